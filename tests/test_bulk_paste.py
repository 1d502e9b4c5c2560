"""Bulk paste into one environment: the per-cell preview (audited as a comparison, within the
reveal budget), then the editor's own review and save (a change request for main)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws, documents
from secrets_admin.models import AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC
from .test_views_editor import post_form

NAME = "a-secrets"
PASTE = (
    "STRIPE_PUBLIC_KEY=pk_test_dev\nSTRIPE_SECRET_KEY=sk_CANARY_pasted\nSENTRY_DSN=https://dsn\n"
)


@pytest.fixture
def client(as_user: Any, engineer: Any, make_secret: Any) -> Any:
    make_secret(NAME, STANDARD_DOC)
    return as_user(engineer)


def _preview(client: Any, text: str, environment: str = "dev", service: str = "") -> Any:
    return client.post(
        reverse("secrets_admin:secret_bulk_paste_preview", args=[NAME]),
        {
            "base_version_id": aws.read_current(NAME).version_id,
            "environment": environment,
            "service": service,
            "text": text,
        },
    )


def _current() -> Any:
    return documents.parse(aws.read_current(NAME).text or "")


def test_a_pasted_env_file_is_previewed_per_cell_then_reviewed_and_saved_by_the_editor(
    client: Any,
) -> None:
    form = client.get(reverse("secrets_admin:secret_bulk_paste", args=[NAME])).content.decode()
    assert 'name="text"' in form and "main (protected: by change request)" in form
    preview = _preview(client, PASTE)
    html = preview.content.decode()
    assert preview.status_code == HTTPStatus.OK
    assert "1 added, 1 changed, 0 changing type, 1 unchanged" in html
    event = AuditEvent.objects.get(action="value_compare")
    assert event.detail["count"] == 2 and event.environment == "dev"  # stored cells only
    assert "sk_CANARY_pasted" not in str(event.detail)
    review = post_form(client, html, "review")
    assert review.status_code == HTTPStatus.OK
    assert "1 added, 1 changed, 0 removed" in review.content.decode()
    assert post_form(client, review.content.decode(), "save").status_code == HTTPStatus.FOUND
    assert _current()["dev"]["stripe"]["secret_key"] == "sk_CANARY_pasted"
    assert _current()["dev"]["sentry"] == {"dsn": "https://dsn"}
    assert _current()["sandbox"] == STANDARD_DOC["sandbox"]


def test_pasted_json_keeps_its_types_and_a_type_change_is_named(client: Any) -> None:
    text = '{"public_key": 42, "retries": 3, "beta": true, "off": null}'
    html = _preview(client, text, service="stripe").content.decode()
    assert "type: string → number" in html
    review = post_form(client, html, "review").content.decode()
    post_form(client, review, "save")
    assert documents.serialise(_current()["dev"]["stripe"]) == (
        '{"public_key":42,"secret_key":"sk_test_dev","retries":3,"beta":true,"off":null}'
    )


def test_a_paste_into_main_becomes_a_change_request(client: Any) -> None:
    html = _preview(client, "STRIPE_SECRET_KEY=sk_live_new", environment="main").content.decode()
    review = post_form(client, html, "review").content.decode()
    assert "Propose change request" in review
    post_form(client, review, "save", comment="rotate")
    assert ChangeRequest.objects.get().comment == "rotate"
    assert _current() == STANDARD_DOC


def test_a_bad_paste_says_why_and_keeps_the_text(client: Any) -> None:
    response = _preview(client, "NOSERVICE=1\nSTRIPE_EMPTY=", environment="dev")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    html = response.content.decode()
    assert "NOSERVICE names no service" in html and "stripe · empty is empty" in html
    assert "required>NOSERVICE=1\nSTRIPE_EMPTY=</textarea>" in html  # the text kept
    assert _preview(client, PASTE, environment="qa").status_code == HTTPStatus.BAD_REQUEST
    assert not AuditEvent.objects.filter(action="value_compare").exists()


def test_previews_count_against_the_reveal_budget(client: Any, settings: Any) -> None:
    settings.PORTAL_REVEAL_RATE = "1/h"
    assert _preview(client, PASTE).status_code == HTTPStatus.OK
    limited = _preview(client, PASTE)
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Too many reveals and comparisons" in limited.content.decode()
    assert AuditEvent.objects.filter(action="value_compare").count() == 1
