"""The auditor's screens: log, filters, timelines, event detail, exports, chain check; and the
canary: no seeded value in the audit table or an export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from secrets_admin import audit, aws
from secrets_admin.audit import AuditAction, Outcome
from secrets_admin.models import AuditEvent

from .test_views_secrets import CANARIES, CANARY_DOC, _database_dump, _reveal

pytestmark = pytest.mark.django_db

LOG = reverse("secrets_admin:audit_log")
EXPORT = reverse("secrets_admin:audit_export")
VERIFY = reverse("secrets_admin:audit_verify")


@pytest.fixture
def events(engineer: Any, approver: Any) -> list[AuditEvent]:
    """A small history: two people, two secrets, several actions and outcomes."""
    as_engineer = audit.Context(user=engineer, client_ip="10.0.0.1")
    as_approver = audit.Context(user=approver, client_ip="10.0.0.2")
    return [
        audit.record(AuditAction.SIGN_IN, context=as_engineer),
        audit.record(
            AuditAction.SAVE,
            context=as_engineer,
            outcome=Outcome.ATTEMPTED,
            secret="a-secrets",
            environment="dev",
            service="stripe",
            key="secret_key",
            new_version="v" * 32,
        ),
        audit.record(
            AuditAction.SAVE,
            context=as_engineer,
            outcome=Outcome.CONFLICTED,
            secret="a-secrets",
            environment="dev",
            service="stripe",
            key="secret_key",
            attempt=2,
        ),
        audit.record(
            AuditAction.REVEAL,
            context=as_approver,
            secret="b-secrets",
            environment="main",
            service="db",
            key="password",
        ),
        audit.record(AuditAction.SIGN_IN, context=as_approver, outcome=Outcome.FAILED),
    ]


def rows(html: str) -> list[int]:
    """The seq numbers listed in the log's table, in order."""
    import re

    return [int(n) for n in re.findall(r'audit/events/(\d+)/">\1</a></th>', html)]


# --------------------------------------------------------------------------------------------
# Access


@pytest.mark.parametrize(
    "url",
    [LOG, reverse("secrets_admin:audit_event_detail", args=[1])],
)
def test_anonymous_is_sent_to_sign_in_and_outsiders_see_no_access(
    client: Any, as_user: Any, outsider: Any, events: Any, url: str
) -> None:
    response = client.get(url)
    assert response.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in response["Location"]
    response = as_user(outsider).get(url)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"no access yet" in response.content


@pytest.mark.parametrize("persona", ["auditor", "engineer", "approver", "admin"])
def test_every_role_from_auditor_up_reads_the_log(
    as_user: Any, request: Any, events: Any, persona: str
) -> None:
    response = as_user(request.getfixturevalue(persona)).get(LOG)
    assert response.status_code == HTTPStatus.OK
    assert rows(response.content.decode()) == [5, 4, 3, 1]  # attempt #2 shows as its outcome #3
    assert b"Audit log</a>" in response.content  # the nav link


def test_outsider_may_not_export_or_verify(as_user: Any, outsider: Any, events: Any) -> None:
    client = as_user(outsider)
    assert client.post(EXPORT, {"format": "csv"}).status_code == HTTPStatus.FORBIDDEN
    assert client.post(VERIFY).status_code == HTTPStatus.FORBIDDEN
    assert AuditEvent.objects.count() == len(events)


def test_export_and_verify_need_post(as_user: Any, auditor: Any) -> None:
    client = as_user(auditor)
    assert client.get(EXPORT).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.get(VERIFY).status_code == HTTPStatus.METHOD_NOT_ALLOWED


# --------------------------------------------------------------------------------------------
# The log


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"secret": "a-secrets"}, [3]),
        ({"secret": "A-SEC"}, [3]),  # any part, any case
        ({"outcome": "attempted"}, [2]),  # asked for: attempts are shown
        ({"environment": "main"}, [4]),
        ({"service": "stripe", "key": "secret_key"}, [3]),
        ({"actor": "alex-approver"}, [5, 4]),
        ({"actor": "approv"}, [5, 4]),
        ({"action": "sign_in"}, [5, 1]),
        ({"outcome": "failed"}, [5]),
        ({"action": "save", "outcome": "conflicted"}, [3]),
        ({"since": "2000-01-01", "until": "2000-01-02"}, []),
    ],
)
def test_log_filters(
    as_user: Any, auditor: Any, events: Any, query: dict[str, str], expected: list[int]
) -> None:
    html = as_user(auditor).get(LOG, query).content.decode()
    assert rows(html) == expected


def test_date_range_is_whole_utc_days(as_user: Any, auditor: Any, events: Any) -> None:
    today = timezone.now().date()
    client = as_user(auditor)
    html = client.get(LOG, {"since": today.isoformat(), "until": today.isoformat()}).content
    assert rows(html.decode()) == [5, 4, 3, 1]
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert rows(client.get(LOG, {"since": tomorrow}).content.decode()) == []


def test_an_invalid_filter_shows_why_and_no_events(as_user: Any, auditor: Any, events: Any) -> None:
    html = (
        as_user(auditor)
        .get(LOG, {"since": "2030-01-02", "until": "2030-01-01", "action": "nope"})
        .content.decode()
    )
    assert "The filter is not valid" in html and "start date is after" in html
    assert "Select a valid choice" in html
    assert "__all__" not in html  # the cross-field error is shown as a sentence, not a field name
    assert rows(html) == []


def test_filtering_by_htmx_returns_only_the_table_fragment(
    as_user: Any, auditor: Any, events: Any
) -> None:
    response = as_user(auditor).get(LOG, {"outcome": "failed"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith('<div id="audit-table">')
    assert "<html" not in html
    assert rows(html) == [5]
    assert 'name="outcome" value="failed"' in html  # the export form follows the filter
    assert response["HX-Push-Url"] == reverse("secrets_admin:audit_log") + "?outcome=failed"


def test_log_pages_with_real_links(as_user: Any, auditor: Any, events: Any, settings: Any) -> None:
    settings.PORTAL_AUDIT_PAGE_SIZE = 1
    client = as_user(auditor)
    first = client.get(LOG, {"actor": "erin-engineer"}).content.decode()
    assert rows(first) == [3]
    assert 'href="/audit/?actor=erin-engineer&amp;page=2"' in first
    second = client.get(LOG, {"actor": "erin-engineer", "page": 2}, headers={"HX-Request": "true"})
    assert rows(second.content.decode()) == [1]
    assert second["HX-Push-Url"] == "/audit/?actor=erin-engineer&page=2"


def test_secret_timeline_fixes_the_secret(as_user: Any, auditor: Any, events: Any) -> None:
    url = reverse("secrets_admin:audit_secret_timeline", args=["a-secrets"])
    client = as_user(auditor)
    html = client.get(url, {"secret": "b-secrets"}).content.decode()  # the URL wins
    assert "Timeline of a-secrets" in html
    assert rows(html) == [3]
    substring = reverse("secrets_admin:audit_secret_timeline", args=["a-secret"])
    assert rows(client.get(substring).content.decode()) == []  # a timeline matches exactly
    assert rows(client.get(url, {"outcome": "conflicted"}).content.decode()) == [3]


def test_user_timeline_fixes_the_actor(as_user: Any, auditor: Any, events: Any) -> None:
    url = reverse("secrets_admin:audit_user_timeline", args=["alex-approver"])
    html = as_user(auditor).get(url).content.decode()
    assert "Timeline of alex-approver" in html and rows(html) == [5, 4]


def test_grid_links_to_the_secret_timeline(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret("a-secrets", CANARY_DOC)
    html = (
        as_user(auditor)
        .get(reverse("secrets_admin:secret_detail", args=["a-secrets"]))
        .content.decode()
    )
    assert reverse("secrets_admin:audit_secret_timeline", args=["a-secrets"]) in html


# --------------------------------------------------------------------------------------------
# One event


def test_event_detail_shows_every_field_its_link_and_its_attempt(
    as_user: Any, auditor: Any, events: Any
) -> None:
    response = as_user(auditor).get(reverse("secrets_admin:audit_event_detail", args=[3]))
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "Event #3: save" in html and "conflicted" in html
    assert "erin-engineer" in html and "10.0.0.1" in html and events[2].hash in html
    assert "matches the content" in html and "follows #2" in html
    assert 'href="/audit/events/2/">#2</a> save' in html  # its attempt


def test_event_detail_flags_an_altered_event(as_user: Any, auditor: Any, events: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET environment = 'uat' WHERE seq = 4"  # noqa: S608
        )
    html = (
        as_user(auditor).get(reverse("secrets_admin:audit_event_detail", args=[4])).content.decode()
    )
    assert "does not match the content" in html


def test_missing_event_is_a_404(as_user: Any, auditor: Any) -> None:
    response = as_user(auditor).get(reverse("secrets_admin:audit_event_detail", args=[99]))
    assert response.status_code == HTTPStatus.NOT_FOUND


# --------------------------------------------------------------------------------------------
# Exports


def test_csv_export_streams_the_filter_and_is_recorded(
    as_user: Any, auditor: Any, events: Any
) -> None:
    response = as_user(auditor).post(EXPORT, {"format": "csv", "secret": "a-secrets"})
    assert response.status_code == HTTPStatus.OK and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="audit-through-5.csv"' in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["seq"]) for r in table] == [2, 3]
    assert table[0]["new_version"] == "v" * 32 and table[1]["outcome"] == "conflicted"
    export = AuditEvent.objects.get(action="audit_export")
    assert export.actor == auditor and export.seq == 6
    assert export.detail == {"format": "csv", "filter": {"secret": "a-secrets"}, "through_seq": 5}


def test_jsonl_export_is_exact_and_each_line_checks_against_its_hash(
    as_user: Any, auditor: Any, events: Any
) -> None:
    client = as_user(auditor)
    client.post(EXPORT, {"format": "csv"})  # event 6, itself exported next
    response = client.post(EXPORT, {"format": "jsonl"})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [item["seq"] for item in lines] == [1, 2, 3, 4, 5, 6]  # not the export itself (7)
    assert all(audit.compute_hash(item) == item["hash"] for item in lines)
    assert lines[5]["detail"]["format"] == "csv"


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(as_user: Any, auditor: Any) -> None:
    audit.record(AuditAction.REVEAL, secret="x-secrets", key="=HYPERLINK(1)")
    response = as_user(auditor).post(EXPORT, {"format": "csv"})
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["key"] == "'=HYPERLINK(1)"


def test_export_with_an_invalid_filter_or_format_is_refused(
    as_user: Any, auditor: Any, events: Any
) -> None:
    client = as_user(auditor)
    assert client.post(EXPORT, {"format": "xml"}).status_code == HTTPStatus.BAD_REQUEST
    bad_date = client.post(EXPORT, {"format": "csv", "since": "yesterday"})
    assert bad_date.status_code == HTTPStatus.BAD_REQUEST
    assert not AuditEvent.objects.filter(action="audit_export").exists()


def test_nothing_is_exported_when_the_export_cannot_be_recorded(
    as_user: Any, auditor: Any, events: Any, monkeypatch: Any
) -> None:
    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(AuditEvent, "save", broken_save)
    response = as_user(auditor).post(EXPORT, {"format": "jsonl"})
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert b"audit log could not record" in response.content
    assert b"a-secrets" not in response.content


# --------------------------------------------------------------------------------------------
# Chain check from the UI


def test_verify_from_the_ui_reports_and_is_recorded(
    as_user: Any, auditor: Any, events: Any
) -> None:
    response = as_user(auditor).post(VERIFY, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith('<div id="audit-verify"')
    assert "The chain is intact: 5 events checked" in html and events[-1].hash in html
    check = AuditEvent.objects.get(action="audit_verify")
    assert (check.actor, check.outcome, check.detail["checked"]) == (auditor, "succeeded", 5)


def test_verify_from_the_ui_names_the_first_bad_event(
    as_user: Any, auditor: Any, events: Any
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE seq = 2")  # noqa: S608
    html = as_user(auditor).post(VERIFY).content.decode()
    assert "<html" in html  # without JavaScript: a page
    assert "broken at" in html and 'href="/audit/events/2/">event #2</a>' in html
    assert "event #2 is missing" in html
    check = AuditEvent.objects.get(action="audit_verify")
    assert check.outcome == "failed" and check.detail["first_bad_seq"] == 2


# --------------------------------------------------------------------------------------------
# The canary


def test_no_seeded_value_in_the_audit_table_or_an_export(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any, caplog: Any, client: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    for env in ("sandbox", "dev", "main", "uat"):  # uat: a failed reveal
        _reveal(as_user(engineer), version, env=env)
    with audit.attempt(
        AuditAction.SAVE, context=audit.Context(user=engineer), secret="a-secrets"
    ) as handle:
        handle.conflicted(detail={"cells": ["dev/stripe/secret_key"]})
    auditor_client = as_user(auditor)
    exports = [
        b"".join(auditor_client.post(EXPORT, {"format": fmt}).streaming_content).decode()
        for fmt in ("csv", "jsonl")
    ]
    auditor_client.post(VERIFY)
    pages = [
        auditor_client.get(LOG).content.decode(),
        *(
            auditor_client.get(
                reverse("secrets_admin:audit_event_detail", args=[e.seq])
            ).content.decode()
            for e in AuditEvent.objects.all()
        ),
    ]
    audit_table = _database_dump()
    assert AuditEvent.objects.filter(action="reveal", outcome="succeeded").count() == 3
    assert "a-secrets" in exports[0] and "a-secrets" in exports[1]
    for canary in CANARIES:
        assert canary not in audit_table
        assert canary not in caplog.text
        for text in (*exports, *pages):
            assert canary not in text
