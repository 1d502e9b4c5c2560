"""The scope canary (README "Access rules": outside a person's scope a secret does not
exist for them).

Team B's secret, a legacy secret of team B and an untagged secret hold names, key names and
values found nowhere else; people with global roles act on them (reveals, change requests, so
the audit log, the change-request list, the compliance page and the emails all know them). Then
a team-A engineer drives every portal page of the access matrix on team A's secret, plus the
list (searched), the status line, every change-request filter, the audit log, every audit event,
both exports and the compliance page; team A's people read their emails. No response body,
header, export or email may contain a team-B or untagged secret's name, key name or fingerprint.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse

from secrets_admin import audit, audit_verify, aws, documents, lint, reads
from secrets_admin.changes import change_requests, protocol
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent

from .conftest import TEAM_A, TEAM_B
from .test_access_matrix import MATRIX, Row, _form

pytestmark = pytest.mark.django_db

A_DOC = {
    "sandbox": {"ledger": {"api_token": "alpha-sandbox-token-1"}},
    "dev": {"ledger": {"api_token": "alpha-dev-token-2"}, "stripe": {"secret_key": "sk_a_dev"}},
    "main": {"ledger": {"api_token": "alpha-main-token-3"}},
}
#: Out of team A's scope: every name below contains "bravo" or "plain", every value is unique.
B_DOC = {
    "sandbox": {"bravo_ledger": {"bravo_api_token": "b-sandbox-value-1"}},
    "dev": {"bravo_ledger": {"bravo_api_token": "b-dev-value-2", "bravo_webhook": "b-dev-3"}},
    "main": {"bravo_ledger": {"bravo_api_token": "b-main-value-4"}},
}
PLAIN_DOC = {
    "dev": {"plainsvc": {"plain_key": "p-dev-value-5"}},
    "main": {"plainsvc": {"plain_key": "p-main-value-6"}},
}
OUT_OF_SCOPE = ("bravo-secrets", "bravo-ledger-dev", "plain-secrets")


def _fingerprints(doc: dict[str, Any]) -> set[str]:
    return {
        documents.short(reads.fingerprint(value))
        for services in doc.values()
        for keys in services.values()
        for value in keys.values()
    }


def _needles() -> set[str]:
    """Every name, key name and (displayed) fingerprint outside team A's scope."""
    names = set(OUT_OF_SCOPE) | {"bravo", "plainsvc", "plain_key"}
    return names | _fingerprints(B_DOC) | _fingerprints(PLAIN_DOC)


@pytest.fixture
def canary_world(
    make_secret: Any, engineer: Any, approver: Any, team_a_approver: Any, team_rules: Any
) -> dict[str, str]:
    """Team A's, team B's and an untagged secret, with history: global people reveal and
    propose on B and the untagged one, a global engineer proposes on A."""
    approver.email = "alex@example.test"
    approver.save()
    make_secret("alpha-secrets", A_DOC, Tags=[{"Key": "team", "Value": TEAM_A}])
    make_secret("bravo-secrets", B_DOC, Tags=[{"Key": "team", "Value": TEAM_B}])
    make_secret("bravo-ledger-dev", {"token": "x"}, Tags=[{"Key": "team", "Value": TEAM_B}])
    make_secret("plain-secrets", PLAIN_DOC)
    as_engineer = audit.Context(user=engineer)
    requests = {}
    for name, service, key in (
        ("bravo-secrets", "bravo_ledger", "bravo_api_token"),
        ("plain-secrets", "plainsvc", "plain_key"),
        ("alpha-secrets", "ledger", "api_token"),
    ):
        version = aws.read_current(name).version_id
        reads.cell_reveal(
            name=name,
            version_id=version,
            environment="dev",
            service=service,
            key=key,
            context=as_engineer,
        )
        cr = change_requests.change_request_propose(
            name=name,
            base_version_id=version,
            changeset=[Edit("set", "main", service, key, f"rotated-{name}")],
            context=as_engineer,
            change_id=protocol.new_change_id(
                user=as_engineer.user, name=name, base_version_id=version
            ),
        )
        requests[name] = (version, cr.pk)
    lint.run(use_cache=False)
    version, cr_pk = requests["alpha-secrets"]
    reviewed = change_requests.change_request_reviewed_token(
        change_requests.change_request_get(cr_pk), version
    )
    return {
        "secret": "alpha-secrets",
        "version": version,
        "change_request": str(cr_pk),
        "reviewed": reviewed,
    }


class Searched:
    """Responses and emails searched, and what was found where."""

    def __init__(self) -> None:
        self.needles = _needles()
        self.responses = 0
        self.emails = 0
        self.hits: list[str] = []

    def look(self, where: str, text: str, echoed: str = "") -> None:
        """Search ``text``; ``echoed``: a name the request itself carried (a typed URL), which
        its answer may repeat as any missing secret's answer does."""
        lowered = text.replace(echoed, "") if echoed else text
        lowered = lowered.lower()
        self.hits += [f"{where}: {n}" for n in sorted(self.needles) if n.lower() in lowered]


def _text(response: Any) -> str:
    body = (
        b"".join(response.streaming_content) if response.streaming else response.content
    ).decode("utf-8", "replace")
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return f"{headers}\n{body}"


def _same_page(content: bytes, name: str) -> str:
    """A page with its per-response tokens (CSP nonce, CSRF token) and the typed name blanked."""
    text = content.decode().replace(name, "N")
    text = re.sub(r'nonce="[^"]*"', 'nonce=""', text)
    return re.sub(r"[A-Za-z0-9]{64}", "TOKEN", text)


def _send(client: Any, entry: Row, world: dict[str, str]) -> Any:
    url = reverse(entry.name, args=[a.format(**world) for a in entry.args])
    data = {k: v.format(**world) for k, v in entry.data.items()}
    headers = {"HX-Request": "true"} if entry.htmx else {}
    if entry.method == "GET":
        return client.get(url, data, headers=headers)
    return client.generic(
        entry.method, url, _form(data), "application/x-www-form-urlencoded", headers=headers
    )


def test_team_a_engineer_never_sees_team_b_or_untagged_secrets(
    canary_world: dict[str, str], team_a_engineer: Any, team_a_approver: Any, client: Any
) -> None:
    searched = Searched()
    client.force_login(team_a_engineer)

    def get(name: str, *args: Any, **params: str) -> Any:
        response = client.get(reverse(f"secrets_admin:{name}", args=args), params)
        searched.responses += 1
        searched.look(f"GET {name}{args}{params}", _text(response))
        return response

    def post(name: str, **data: str) -> Any:
        response = client.post(reverse(f"secrets_admin:{name}"), data)
        searched.responses += 1
        searched.look(f"POST {name}{data}", _text(response))
        return response

    # Every portal row of the access matrix, on team A's secret and request. Rows that change
    # state run after the reads, so what they did is in the pages read last.
    rows = [r for r in MATRIX if r.name.startswith("secrets_admin:")]
    rows.sort(key=lambda r: r.method != "GET")
    for entry in rows:
        response = _send(client, entry, canary_world)
        searched.responses += 1
        searched.look(entry.id, _text(response))

    listed = get("secret_list")
    assert b"alpha-secrets" in listed.content
    get("secret_list", q="ravo")
    get("secret_list", q="secrets")
    get("secret_list_status")
    for show in ("open", "mine", "waiting", "all"):
        get("change_request_list", show=show)
    get("compliance")
    for severity in ("error", "warning"):
        get("compliance", severity=severity)
    log = get("audit_log")
    assert b"alpha-secrets" in log.content
    get("audit_user_timeline", "erin-engineer")
    hidden = 0
    for seq in AuditEvent.objects.values_list("seq", flat=True):
        if get("audit_event_detail", seq).status_code == HTTPStatus.NOT_FOUND:
            hidden += 1
    assert hidden > 0  # the reveals and requests on B and the untagged secret
    for export_format in ("csv", "jsonl"):
        export = post("audit_export", format=export_format)
        assert export.status_code == HTTPStatus.OK
    # Direct URLs: exactly a missing secret's 404 (the typed name aside), whatever the view.
    direct = [r for r in rows if r.args == ("{secret}",)]
    for name in OUT_OF_SCOPE:
        for entry in direct:
            if (
                not name.endswith("-secrets")
                and entry.name != "secrets_admin:audit_secret_timeline"
            ):
                continue  # a legacy name is no unified secret's URL at all
            probe = _send(client, entry, {**canary_world, "secret": name})
            missing = _send(client, entry, {**canary_world, "secret": "nosuch-secrets"})
            searched.responses += 1
            searched.look(f"{entry.id} on {name}", _text(probe), echoed=name)
            assert probe.status_code == HTTPStatus.NOT_FOUND, f"{entry.id} on {name}"
            assert _same_page(probe.content, name) == _same_page(
                missing.content, "nosuch-secrets"
            ), f"{entry.id} on {name}: differs from a missing secret's answer"

    mine = [m for m in mail.outbox if {team_a_engineer.email, team_a_approver.email} & set(m.to)]
    assert mine  # team A's lead was asked to approve A's request
    for message in mine:
        searched.emails += 1
        searched.look(f"email {message.subject!r}", f"{message.subject}\n{message.body}")

    print(  # the figures for the report
        f"\nscope canary: {searched.responses} responses and {searched.emails} emails searched "
        f"for {len(searched.needles)} names and fingerprints; {len(searched.hits)} hits"
    )
    assert searched.hits == []
    assert searched.responses > len(rows)


# --------------------------------------------------------------------------------------------
# Revealing a value of a protected environment states a reason


@pytest.fixture
def alpha(make_secret: Any, team_rules: Any) -> str:
    make_secret("alpha-secrets", A_DOC, Tags=[{"Key": "team", "Value": TEAM_A}])
    return aws.read_current("alpha-secrets").version_id


def _reveal(client: Any, version: str, environment: str, reason: str | None = None) -> Any:
    data = {"version_id": version, "cell": f'["{environment}", "ledger", "api_token"]'}
    if reason is not None:
        data["reason"] = reason
    return client.post(reverse("secrets_admin:cell_reveal", args=["alpha-secrets"]), data)


def test_protected_reveal_without_a_reason_is_refused_and_records_nothing(
    alpha: str, team_a_engineer: Any, client: Any
) -> None:
    client.force_login(team_a_engineer)
    for reason in (None, "", "   "):
        response = _reveal(client, alpha, "main", reason)
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert b"needs a reason" in response.content
        assert b"alpha-main-token-3" not in response.content
    assert not AuditEvent.objects.filter(action="reveal").exists()
    # An unprotected environment asks for none.
    assert _reveal(client, alpha, "dev").status_code == HTTPStatus.OK


def test_protected_reveal_reason_is_in_the_chained_event_and_the_timeline(
    alpha: str, team_a_engineer: Any, client: Any
) -> None:
    client.force_login(team_a_engineer)
    response = _reveal(client, alpha, "main", "  INC-4711: checking the live token  ")
    assert response.status_code == HTTPStatus.OK
    assert b"alpha-main-token-3" in response.content

    event = AuditEvent.objects.get(action="reveal", outcome="succeeded")
    assert event.environment == "main"
    assert event.detail == {"reason": "INC-4711: checking the live token"}
    assert audit.compute_hash(event) == event.hash  # the reason is part of the chained hash
    assert audit_verify.verify().ok
    timeline = client.get(reverse("secrets_admin:audit_secret_timeline", args=["alpha-secrets"]))
    assert "reason: “INC-4711: checking the live token”" in timeline.content.decode()


def test_reveal_policy_approver_and_deny_refuse_engineers(
    alpha: str, team_a_engineer: Any, team_a_approver: Any, client: Any, settings: Any
) -> None:
    rules = json.loads(settings.PORTAL_ACCESS_RULES)
    settings.PORTAL_ACCESS_RULES = json.dumps({**rules, "reveal": {"main": "approver"}})
    client.force_login(team_a_engineer)
    assert _reveal(client, alpha, "main", "why").status_code == HTTPStatus.FORBIDDEN
    client.force_login(team_a_approver)
    assert _reveal(client, alpha, "main", "why").status_code == HTTPStatus.OK

    settings.PORTAL_ACCESS_RULES = json.dumps({**rules, "reveal": {"main": "deny"}})
    response = _reveal(client, alpha, "main", "why")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"alpha-main-token-3" not in response.content
    assert (
        AuditEvent.objects.filter(action="reveal", environment="main").count() == 1
    )  # the one allowed reveal: one row; refusals read nothing


def test_grid_shows_the_reason_field_and_who_may_do_what(
    alpha: str, team_a_engineer: Any, team_a_auditor: Any, client: Any
) -> None:
    client.force_login(team_a_engineer)
    page = client.get(reverse("secrets_admin:secret_detail", args=["alpha-secrets"]))
    html = page.content.decode()
    assert 'name="reason"' in html and "Reason for revealing main values" in html
    assert "<code>team-a-engineers</code>: edit sandbox, dev; propose main" in html
    assert "<code>team-a-leads</code>: edit sandbox, dev; approve main" in html
    client.force_login(team_a_auditor)
    html = client.get(reverse("secrets_admin:secret_detail", args=["alpha-secrets"])).content
    assert b'name="reason"' not in html and b">Reveal<" not in html


def test_waiting_for_me_lists_only_requests_the_approver_may_decide(
    canary_world: dict[str, str], team_a_approver: Any, approver: Any, client: Any
) -> None:
    from secrets_admin.models import ChangeRequest

    ids = dict(ChangeRequest.objects.values_list("secret", "pk"))
    waiting = reverse("secrets_admin:change_request_detail", args=[ids["alpha-secrets"]])
    client.force_login(team_a_approver)
    html = client.get(reverse("secrets_admin:change_request_list"), {"show": "waiting"})
    assert waiting in html.content.decode()
    for name in ("bravo-secrets", "plain-secrets"):
        other = reverse("secrets_admin:change_request_detail", args=[ids[name]])
        assert other not in html.content.decode()
        assert client.get(other).status_code == HTTPStatus.NOT_FOUND
    client.force_login(approver)  # a global approver is asked for all three
    html = client.get(reverse("secrets_admin:change_request_list"), {"show": "waiting"})
    assert all(
        reverse("secrets_admin:change_request_detail", args=[pk]) in html.content.decode()
        for pk in ids.values()
    )
