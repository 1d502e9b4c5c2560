"""CSRF on every state-changing request, htmx included; state changes only by POST (ASVS
5.0 3.5.1). The URL list comes from the resolver (``tests/urltable.py``), so a new
view is covered the day it is added."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from secrets_admin import audit, aws
from secrets_admin.changes import change_requests, protocol
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC
from .urltable import CSRF_EXEMPT, POST_VIEWS, SAMPLE_SECRET, all_urls

pytestmark = pytest.mark.django_db


@pytest.fixture
def csrf_client(engineer: Any, make_secret: Any) -> Client:
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    return client


def _reveal_fields() -> dict[str, str]:
    version = aws.read_current(SAMPLE_SECRET).version_id or ""
    return {"version_id": version, "environment": "dev", "service": "stripe", "key": "secret_key"}


@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_every_url_refuses_a_post_without_csrf_token(csrf_client: Client, htmx: bool) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    checked = []
    for url in all_urls():
        if str(url) in CSRF_EXEMPT:
            continue
        response = csrf_client.post(url.path, _reveal_fields(), headers=headers)
        assert response.status_code == HTTPStatus.FORBIDDEN, (str(url), response.status_code)
        body = response.content.decode()
        assert "security check of this form failed" in body, str(url)
        assert ("<html" in body) is not htmx, str(url)
        checked.append(str(url))
    assert {"secrets_admin:cell_reveal", "secrets_admin:secret_list_refresh"} <= set(checked)


def test_a_wrong_token_or_a_foreign_origin_is_refused(csrf_client: Client) -> None:
    csrf_client.get(reverse("secrets_admin:secret_list"))
    token = csrf_client.cookies["csrftoken"].value
    url = reverse("secrets_admin:cell_reveal", args=[SAMPLE_SECRET])
    wrong = csrf_client.post(url, _reveal_fields(), headers={"X-CSRFToken": "x" * 32})
    assert wrong.status_code == HTTPStatus.FORBIDDEN
    foreign = csrf_client.post(
        url,
        _reveal_fields(),
        headers={"X-CSRFToken": token, "Origin": "https://evil.example"},
    )
    assert foreign.status_code == HTTPStatus.FORBIDDEN


def test_the_htmx_header_token_from_the_page_is_accepted(csrf_client: Client) -> None:
    """The token htmx sends (``hx-headers`` on <body>) passes, so the check above is not vacuous."""
    page = csrf_client.get(reverse("secrets_admin:secret_detail", args=[SAMPLE_SECRET]))
    html = page.content.decode()
    token = html.split('hx-headers=\'{"x-csrftoken": "')[1].split('"')[0]
    response = csrf_client.post(
        reverse("secrets_admin:cell_reveal", args=[SAMPLE_SECRET]),
        _reveal_fields(),
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK
    assert b"sk_test_dev" in response.content


def test_only_the_listed_views_accept_post_and_those_refuse_get(
    client: Any, engineer: Any, make_secret: Any
) -> None:
    """State changes only by POST: views of ours outside ``POST_VIEWS`` answer POST with 405;
    POST-only views answer GET with 405. A new POST view fails here until it is listed."""
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client.force_login(engineer)
    ours = [u for u in all_urls() if u.ours]
    assert set(POST_VIEWS) <= {str(u) for u in ours}, "POST_VIEWS names a URL that is gone"
    for url in ours:
        post = client.post(url.path, {})
        get = client.get(url.path)
        assert post.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, str(url)
        if str(url) in POST_VIEWS:
            assert post.status_code != HTTPStatus.METHOD_NOT_ALLOWED, str(url)
            allowed_get = POST_VIEWS[str(url)]
            assert (get.status_code != HTTPStatus.METHOD_NOT_ALLOWED) is allowed_get, str(url)
        else:
            assert post.status_code == HTTPStatus.METHOD_NOT_ALLOWED, (
                f"{url} accepts POST: list it in tests/urltable.py POST_VIEWS (and test it)"
            )


#: Tables a GET may write, with the reason.
GET_MAY_WRITE = {
    "secrets_admin_secretsummary": "what a read learned of a secret's structure, for the list",
    "django_session": "the idle-timeout clock (PortalMiddleware)",
}


def _tables() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a GET must leave alone."""
    rows = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            if table not in GET_MAY_WRITE:
                cursor.execute(f'SELECT * FROM "{table}" ORDER BY 1')  # noqa: S608 - model names
                rows[table] = cursor.fetchall()
    return rows


@pytest.mark.parametrize("persona", ["engineer", "admin"])
def test_get_requests_change_nothing(
    request: Any, client: Any, make_secret: Any, persona: str
) -> None:
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client.force_login(request.getfixturevalue(persona))
    before = _tables()
    for url in all_urls():
        client.get(url.path)
        client.get(url.path, headers={"HX-Request": "true"})
    assert _tables() == before


#: Secrets Manager operations that only read; any other one is a write.
READ_OPERATIONS = ("Get", "Describe", "List", "BatchGet")


@pytest.mark.parametrize("persona", ["auditor", "engineer", "approver", "admin"])
def test_no_get_writes_an_audit_event_or_calls_a_write_api(
    request: Any, client: Any, make_secret: Any, engineer: Any, persona: str
) -> None:
    """Every URL, GET (plain and htmx) as each role: no audit event, no write call to Secrets
    Manager, and an expired open change request stays as it is (expiring it is the
    ``change_requests_expire`` command's write, never a page view's)."""
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    base = aws.read_current(SAMPLE_SECRET).version_id
    expired = change_requests.change_request_propose(
        name=SAMPLE_SECRET,
        base_version_id=base,
        changeset=[Edit("set", "main", "stripe", "secret_key", "x")],
        context=audit.Context(user=engineer),
        change_id=protocol.new_change_id(user=engineer, name=SAMPLE_SECRET, base_version_id=base),
    )
    ChangeRequest.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    client.force_login(request.getfixturevalue(persona))
    writes: list[str] = []

    def count_writes(model: Any, **kwargs: Any) -> None:
        if not model.name.startswith(READ_OPERATIONS):
            writes.append(model.name)

    events = AuditEvent.objects.count()
    sm = aws.client()
    sm.meta.events.register("before-call.secrets-manager", count_writes)
    try:
        for url in all_urls():
            client.get(url.path)
            client.get(url.path, headers={"HX-Request": "true"})
    finally:
        sm.meta.events.unregister("before-call.secrets-manager", count_writes)
    assert writes == []
    assert AuditEvent.objects.count() == events
    assert ChangeRequest.objects.get(pk=expired.pk).status == ChangeRequest.Status.OPEN
