"""Everyday comforts around editing: the approvers' "waiting for me" count in the navigation,
and the audit log read as one row per action."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.urls import reverse

from secrets_admin import audit
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent

from .test_change_requests import MAIN_EDIT, NAME, propose, save
from .test_change_requests import secret as secret  # the fixture: a standard secret

WAITING = "waiting for me</span>"


def test_approvers_see_how_many_requests_wait_for_them_and_the_link_opens_on_them(
    secret: str, as_user: Any, engineer: Any, approver: Any, auditor: Any
) -> None:
    page = as_user(approver).get(reverse("secrets_admin:secret_list")).content.decode()
    assert WAITING not in page
    assert f'href="{reverse("secrets_admin:change_request_list")}?show=waiting"' in page
    waiting = propose(engineer, MAIN_EDIT)
    own = propose(approver, MAIN_EDIT)  # their own request does not wait for them
    page = as_user(approver).get(reverse("secrets_admin:secret_list")).content.decode()
    assert f'<span class="badge warn">1 {WAITING}' in page
    for other in (engineer, auditor):  # not approvers: no count, no query
        assert (
            WAITING not in as_user(other).get(reverse("secrets_admin:secret_list")).content.decode()
        )
    listing = as_user(approver).get(
        reverse("secrets_admin:change_request_list"), {"show": "waiting"}
    )
    assert listing.status_code == HTTPStatus.OK
    html = listing.content.decode()
    assert reverse("secrets_admin:change_request_detail", args=[waiting.pk]) in html
    assert reverse("secrets_admin:change_request_detail", args=[own.pk]) not in html


def test_the_audit_log_reads_one_row_per_save_with_its_cells_listed_and_failures_marked(
    secret: str, as_user: Any, engineer: Any, auditor: Any
) -> None:
    landed = save(engineer, Edit("set", "dev", "stripe", "secret_key", "sk_CANARY_audit"))
    audit.record(
        audit.AuditAction.SAVE, context=audit.Context(user=engineer), outcome="failed", secret=NAME
    )
    client = as_user(auditor)
    html = client.get(reverse("secrets_admin:audit_log"), {"secret": NAME}).content.decode()
    assert html.count('<tr class="outcome-') == 2  # the failure, and the save as one row
    assert '<tr class="outcome-failed">' in html and '<tr class="outcome-attempted">' not in html
    assert 'dev · stripe · <code>secret_key</code> <span class="small muted">changed</span>' in html
    event = AuditEvent.objects.get(new_version=landed.new_version_id, outcome="succeeded")
    detail = client.get(reverse("secrets_admin:audit_event_detail", args=[event.seq])).content
    page = detail.decode()
    assert "<dt>Cells</dt>" in page and "<summary>as recorded (JSON)</summary>" in page
    assert "sk_CANARY_audit" not in html + page


def test_search_finds_secrets_by_service_or_key_from_their_summaries_without_aws_calls(
    as_user: Any, auditor: Any, make_secret: Any, calls: Any
) -> None:
    make_secret("shop-secrets", {"dev": {"stripe": {"secret_key": "x"}, "db": {"url": "y"}}})
    make_secret("blog-secrets", {"dev": {"sentry": {"dsn": "z"}}})
    make_secret("unread-secrets", {"dev": {"stripe": {"secret_key": "never read"}}})
    client = as_user(auditor)
    for name in ("shop-secrets", "blog-secrets"):  # opening a grid records its summary
        client.get(reverse("secrets_admin:secret_detail", args=[name]))
    list_url = reverse("secrets_admin:secret_list")
    client.get(list_url)  # the listing is cached from here on
    before = len(calls.calls)
    html = client.get(list_url, {"q": "stripe.secret_key"}).content.decode()
    assert len(calls.calls) == before  # answered from the summaries: no AWS call
    assert "Services and keys matching" in html
    assert "shop-secrets</a>: <code>stripe.secret_key</code>" in html
    assert "1 of 3 secrets match" in html and "blog-secrets" not in html
    assert "unread-secrets</a>:" not in html  # never read: its structure is not known yet
    word = client.get(list_url, {"q": "DSN"}).content.decode()
    assert "blog-secrets</a>: <code>sentry.dsn</code>" in word
    service = client.get(list_url, {"q": "db"}).content.decode()
    assert "shop-secrets</a>: <code>db</code>" in service
