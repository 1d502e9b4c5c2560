"""Compare environments, drift, integration snippets, the compliance page and secrets_lint."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from secrets_admin import aws
from secrets_admin.models import AuditEvent

from .conftest import STANDARD_DOC
from .test_views_secrets import _database_dump

pytestmark = pytest.mark.django_db

DOC = {
    "sandbox": {"stripe": {"secret_key": "sk_test_CANARY-sand", "public_key": "pk_CANARY-same"}},
    "dev": {
        "stripe": {"secret_key": "sk_live_CANARY-dev", "public_key": "pk_CANARY-same"},
        "db": {"port": 5432},
    },
    "main": {
        "stripe": {"secret_key": "sk_test_CANARY-main", "public_key": "pk_CANARY-same"},
        "db": {"port": "5432"},
        "only main": {"flag": True},
    },
}
CANARIES = ("CANARY-sand", "CANARY-same", "CANARY-dev", "CANARY-main")


def _no_canary(*texts: str | bytes) -> None:
    for text in texts:
        raw = text if isinstance(text, bytes) else text.encode()
        for canary in CANARIES:
            assert canary.encode() not in raw, canary


def _cache_dump() -> bytes:
    return b"".join(v for v in cache._cache.values() if isinstance(v, bytes))  # type: ignore[attr-defined]


@pytest.fixture
def calls() -> list[str]:
    made: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: made.append(model.name)
    )
    return made


def _diff(client: Any, name: str = "a-secrets", **query: str) -> Any:
    return client.get(reverse("secrets_admin:environment_diff", args=[name]), query)


# ----------------------------------------------------------------------------------------
# Compare environments


def test_auditor_sees_the_diff_with_counts_from_one_describe_and_one_get(
    as_user: Any, auditor: Any, make_secret: Any, calls: list[str]
) -> None:
    make_secret("a-secrets", DOC)
    response = _diff(as_user(auditor), a="dev", b="main")
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert sorted(calls) == ["DescribeSecret", "GetSecretValue"]
    assert "<strong>1</strong> same value" in html
    assert "<strong>1</strong> different value" in html
    assert "<strong>1</strong> different type" in html
    assert "<strong>1</strong> only in main" in html and "<strong>0</strong> only in dev" in html
    assert "only main" in html  # a service name with a space
    assert "Reveal" not in html  # auditors compare, they do not reveal
    _no_canary(html)


def test_diff_defaults_to_dev_and_main(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret("a-secrets", DOC)
    html = _diff(as_user(auditor)).content.decode()
    assert "A: dev" in html and "B: main" in html


def test_differences_only_by_htmx_returns_the_fragment(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    response = as_user(auditor).get(
        reverse("secrets_admin:environment_diff", args=["a-secrets"]),
        {"a": "sandbox", "b": "main", "show": "differences"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="comparison">') and "<html" not in html
    assert "public_key" not in html  # same in both: filtered out
    assert "secret_key" in html and "<strong>1</strong> same value" in html  # counts stay whole
    plain = _diff(as_user(auditor), a="sandbox", b="main", show="differences").content.decode()
    assert "<html" in plain and "public_key" not in plain and "secret_key" in plain


def test_identical_environments_say_so(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret("a-secrets", {"dev": {"s": {"k": "v"}}, "main": {"s": {"k": "v"}}})
    html = _diff(as_user(auditor), show="differences").content.decode()
    assert "No differences" in html


def test_unknown_environment_is_a_bad_request_with_the_choices(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    response = _diff(as_user(auditor), a="dev", b="<uat env>")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    html = response.content.decode()
    assert "no environment &#x27;&lt;uat env&gt;&#x27;" in html
    assert "sandbox, dev, main" in html
    assert "<uat env>" not in html


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"dev": {"s": {"k": "v"}}, "main": {"s": {"k": "v"}}}, "Choose two different"),
        ({"dev": {"s": {"k": "v"}}}, "fewer than two environments"),
        ("{}", "fewer than two environments"),
        ("  ", "empty"),
        ("KEY=CANARY-dev", "does not follow"),
    ],
)
def test_diff_of_odd_secrets_explains_without_crashing(
    as_user: Any, auditor: Any, make_secret: Any, value: Any, shown: str
) -> None:
    make_secret("a-secrets", value)
    query = {"a": "dev", "b": "dev"} if shown.startswith("Choose") else {}
    response = _diff(as_user(auditor), **query)
    assert response.status_code == HTTPStatus.OK
    assert shown in response.content.decode()
    _no_canary(response.content)


def test_engineer_reveals_both_sides_of_one_row_audited(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    client = as_user(engineer)
    html = _diff(client, a="dev", b="main").content.decode()
    assert html.count('aria-label="Reveal dev stripe secret_key"') == 1
    assert html.count('aria-label="Reveal main stripe secret_key"') == 1
    _no_canary(html)
    version = aws.read_current("a-secrets").version_id
    revealed = []
    for env in ("dev", "main"):
        response = client.post(
            reverse("secrets_admin:cell_reveal", args=["a-secrets"]),
            {
                "version_id": version,
                "environment": env,
                "service": "stripe",
                "key": "secret_key",
                "reason": "comparing",  # asked in main (protected)
            },
            headers={"HX-Request": "true"},
        )
        assert response.status_code == HTTPStatus.OK
        revealed.append(response.content.decode())
    assert "sk_live_CANARY-dev" in revealed[0] and "sk_test_CANARY-main" in revealed[1]
    assert AuditEvent.objects.filter(action="reveal", outcome="succeeded").count() == 2


@pytest.mark.parametrize("persona", ["auditor", "engineer", "approver", "admin"])
def test_every_role_may_compare(as_user: Any, make_secret: Any, persona: str, request: Any) -> None:
    make_secret("a-secrets", DOC)
    response = _diff(as_user(request.getfixturevalue(persona)))
    assert response.status_code == HTTPStatus.OK
    assert ("Reveal" in response.content.decode()) is (persona != "auditor")


def test_outsider_and_anonymous_may_not_compare(
    client: Any, as_user: Any, outsider: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    anonymous = _diff(client)
    assert anonymous.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in anonymous["Location"]
    response = _diff(as_user(outsider))
    assert response.status_code == HTTPStatus.FORBIDDEN and b"no access yet" in response.content


def test_diff_of_missing_or_non_unified_secret_is_404(as_user: Any, auditor: Any) -> None:
    assert _diff(as_user(auditor), "nope-secrets").status_code == HTTPStatus.NOT_FOUND
    assert _diff(as_user(auditor), "legacy-stripe-dev").status_code == HTTPStatus.NOT_FOUND


# ----------------------------------------------------------------------------------------
# Drift on the list and the grid


def test_list_and_grid_show_how_many_cells_each_environment_misses(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    make_secret("b-secrets", STANDARD_DOC)
    make_secret("c-secrets", {"dev": {"s": {"k": "1"}}, "main": {"s": {"k": "2"}}})
    client = as_user(auditor)
    grid = client.get(reverse("secrets_admin:secret_detail", args=["a-secrets"])).content.decode()
    assert "lacks 2</span>" in grid  # sandbox lacks db.port and only main.flag
    assert "lacks 1</span>" in grid  # dev lacks only main.flag
    for name in ("b-secrets", "c-secrets"):
        client.get(reverse("secrets_admin:secret_detail", args=[name]))
    listing = client.get(reverse("secrets_admin:secret_list")).content.decode()
    assert "sandbox: 2 missing" in listing and "dev: 1 missing" in listing
    assert "main: 2 missing" in listing  # b-secrets: main lacks databricks' two keys
    assert "in step" in listing  # c-secrets
    _no_canary(grid, listing)


# ----------------------------------------------------------------------------------------
# Integration snippets


def test_integration_shows_policy_with_account_region_and_variables(
    as_user: Any, auditor: Any, make_secret: Any, calls: list[str]
) -> None:
    make_secret("a-secrets", DOC)
    client = as_user(auditor)
    url = reverse("secrets_admin:secret_integration", args=["a-secrets"])
    html = client.get(url).content.decode()
    assert "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-secrets-*" in html
    assert "secretsmanager:GetSecretValue" in html
    assert "STRIPE_SECRET_KEY" in html and "DB_PORT" in html and "ONLY_MAIN_FLAG" in html
    assert "process.env.ONLY_MAIN_FLAG = config[&quot;only main&quot;].flag;" in html
    assert "// sandbox lacks: DB_PORT (db.port), ONLY_MAIN_FLAG (only main.flag)" in html
    assert "Missing from" in html
    assert sorted(calls) == ["DescribeSecret", "GetSecretValue"]
    _no_canary(html)
    assert cache.get("portal:aws:caller:v1").account == "123456789012"


def test_integration_of_a_non_standard_secret_still_gives_the_policy(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", "KEY=CANARY-dev")
    html = (
        as_user(engineer)
        .get(reverse("secrets_admin:secret_integration", args=["a-secrets"]))
        .content.decode()
    )
    assert ":secret:a-secrets-*" in html and "does not follow" in html
    _no_canary(html)


def test_integration_access(client: Any, as_user: Any, outsider: Any, make_secret: Any) -> None:
    make_secret("a-secrets", DOC)
    url = reverse("secrets_admin:secret_integration", args=["a-secrets"])
    assert client.get(url).status_code == HTTPStatus.FOUND
    assert as_user(outsider).get(url).status_code == HTTPStatus.FORBIDDEN


# ----------------------------------------------------------------------------------------
# Compliance page


def _account(make_secret: Callable[..., str]) -> None:
    make_secret("a-secrets", DOC)  # value rules, type drift, no case problems
    make_secret("good-secrets", STANDARD_DOC | {"main": STANDARD_DOC["dev"]})
    make_secret("a-stripe-dev", json.dumps({"secret_key": "sk_test_CANARY-sand"}))
    make_secret("bad-secrets", "KEY=CANARY-dev")


def test_compliance_page_lists_findings_linked_to_fixes_without_values(
    as_user: Any, auditor: Any, make_secret: Any, calls: list[str], caplog: Any
) -> None:
    _account(make_secret)
    client = as_user(auditor)
    response = client.get(reverse("secrets_admin:compliance"))
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert calls.count("GetSecretValue") == 3 and calls.count("ListSecrets") == 1
    assert "3 GetSecretValue calls" in html
    assert "values.stripe-live-key-outside-main" in html
    assert "values.stripe-test-key-in-main" in html
    assert "legacy.fold-into-unified" in html and "structure.not-conforming" in html
    assert reverse("secrets_admin:secret_detail", args=["a-secrets"]) in html
    assert reverse("secrets_admin:environment_diff", args=["a-secrets"]) + "?a=" in html
    _no_canary(html, _cache_dump(), _database_dump(), caplog.text)
    calls.clear()
    again = client.get(reverse("secrets_admin:compliance"), {"severity": "warning"})
    assert calls == []  # served from the cache
    assert "values.stripe" not in again.content.decode()
    client.post(reverse("secrets_admin:compliance_refresh"))
    client.get(reverse("secrets_admin:compliance"))
    assert calls.count("GetSecretValue") == 3


def test_compliance_page_for_a_clean_account(as_user: Any, approver: Any, make_secret: Any) -> None:
    make_secret("good-secrets", {e: {"s": {"k": "v"}} for e in ("sandbox", "dev", "main")})
    html = as_user(approver).get(reverse("secrets_admin:compliance")).content.decode()
    assert "No findings" in html


def test_compliance_reports_malformed_value_rules(
    as_user: Any, auditor: Any, make_secret: Any, settings: Any
) -> None:
    settings.PORTAL_VALUE_RULES = [{"id": "x"}]
    make_secret("good-secrets", {e: {"s": {"k": "v"}} for e in ("sandbox", "dev", "main")})
    html = as_user(auditor).get(reverse("secrets_admin:compliance")).content.decode()
    assert "config.value-rules" in html and "entry 1 needs a" in html


def test_compliance_access(client: Any, as_user: Any, outsider: Any) -> None:
    url = reverse("secrets_admin:compliance")
    assert client.get(url).status_code == HTTPStatus.FOUND
    assert as_user(outsider).get(url).status_code == HTTPStatus.FORBIDDEN
    assert as_user(outsider).post(reverse("secrets_admin:compliance_refresh")).status_code == (
        HTTPStatus.FORBIDDEN
    )


# ----------------------------------------------------------------------------------------
# manage.py secrets_lint


def _lint(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("secrets_lint", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_lint_exits_zero_on_a_clean_account(make_secret: Any) -> None:
    # A separate credential per environment: one value in all three is reuse (hygiene.py).
    make_secret("good-secrets", {e: {"s": {"k": f"v-{e}"}} for e in ("sandbox", "dev", "main")})
    code, out, _ = _lint()
    assert code == 0
    assert "0 error(s), 0 warning(s)" in out


def test_lint_exits_one_on_errors_and_prints_text(make_secret: Any) -> None:
    _account(make_secret)
    code, out, message = _lint("--base-url", "https://portal.example/")
    assert code == 1 and "at or above error" in message
    assert (
        "ERROR   values.stripe-live-key-outside-main  a-secrets [dev > stripe > secret_key]" in out
    )
    assert "fix: https://portal.example/secrets/a-secrets/" in out
    _no_canary(out, message)


def test_lint_json_output_and_secret_filter(make_secret: Any) -> None:
    _account(make_secret)
    code, out, _ = _lint("--format", "json", "--secret", "a-secrets")
    data = json.loads(out)
    assert code == 1
    assert {f["secret"] for f in data["findings"]} == {"a-secrets", "a-stripe-dev"}
    assert data["counts"]["error"] == sum(f["severity"] == "error" for f in data["findings"])
    legacy = next(f for f in data["findings"] if f["rule"] == "legacy.fold-into-unified")
    assert legacy["related"] == "a-secrets" and legacy["fix_url"] == "/secrets/a-secrets/"
    assert data["values_read"] == 3
    _no_canary(out)


def test_lint_fail_on_warning(make_secret: Any) -> None:
    make_secret("good-secrets", {e: {"s": {"k": f"v-{e}"}} for e in ("sandbox", "dev", "main")})
    make_secret("good-stripe-dev", "{}")
    assert _lint()[0] == 0
    assert _lint("--fail-on", "warning")[0] == 1


def test_lint_exits_two_when_aws_cannot_be_reached(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws.reset_clients()
    code, _, message = _lint()
    assert code == 2 and "could not be reached" in message
