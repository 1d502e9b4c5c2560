"""The list, grid and reveal screens, with the personas and the canary values."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws, listing
from secrets_admin.models import AuditEvent

from .conftest import STANDARD_DOC

pytestmark = pytest.mark.django_db

CANARY_DOC = {
    "sandbox": {"stripe": {"secret_key": "CANARY-sandbox-7f3a"}},
    "dev": {"stripe": {"secret_key": "CANARY-dev-91be"}, "db": {"port": 5432}},
    "main": {"stripe": {"secret_key": "CANARY-main-c0de"}},
}
CANARIES = ("CANARY-sandbox-7f3a", "CANARY-dev-91be", "CANARY-main-c0de")


def test_anonymous_is_sent_to_sign_in(client: Any) -> None:
    response = client.get(reverse("secrets_admin:secret_list"))
    assert response.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in response["Location"]


def test_outsider_sees_the_no_access_page(as_user: Any, outsider: Any) -> None:
    response = as_user(outsider).get(reverse("secrets_admin:secret_list"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"no access yet" in response.content


def test_list_shows_only_unified_secrets_with_badges(
    as_user: Any, auditor: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("alpha-secrets", STANDARD_DOC, Description="Alpha app")
    make_secret("beta-secrets", "KEY=value")
    make_secret("gamma-secrets")
    make_secret("gone-secrets", STANDARD_DOC)
    sm.delete_secret(SecretId="gone-secrets", RecoveryWindowInDays=7)
    make_secret("alpha-stripe-dev", "{}")
    client = as_user(auditor)
    client.get(reverse("secrets_admin:secret_detail", args=["alpha-secrets"]))
    client.get(reverse("secrets_admin:secret_detail", args=["beta-secrets"]))
    html = client.get(reverse("secrets_admin:secret_list")).content.decode()
    assert "alpha-secrets" in html and "Alpha app" in html
    assert "alpha-stripe-dev" not in html
    assert "conforming" in html and "not JSON" in html
    assert "no value yet" in html and "scheduled for deletion" in html


def test_empty_account_explains_how_to_create_the_first_secret(as_user: Any, auditor: Any) -> None:
    html = as_user(auditor).get(reverse("secrets_admin:secret_list")).content.decode()
    assert "No unified secrets yet" in html and "create-secret" in html


def test_search_by_htmx_returns_only_the_table_fragment(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    for name in ("alpha-secrets", "beta-secrets", "alphabet-secrets"):
        make_secret(name, STANDARD_DOC)
    response = as_user(auditor).get(
        reverse("secrets_admin:secret_list"), {"q": "alpha"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith('<div id="secret-table" ')
    assert "<html" not in html
    assert "alpha-secrets" in html and "alphabet-secrets" in html and "beta-secrets" not in html


def test_list_pages_and_serves_warm_from_cache(
    as_user: Any, auditor: Any, make_secret: Any, settings: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(listing, "_spawn", lambda work: work())  # the refresh, inline
    settings.PORTAL_LIST_PAGE_SIZE = 2
    for i in range(5):
        make_secret(f"r{i}-secrets", STANDARD_DOC)
    client = as_user(auditor)
    page3 = client.get(reverse("secrets_admin:secret_list"), {"page": 3}).content.decode()
    assert "r4-secrets" in page3 and "r0-secrets" not in page3
    calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: calls.append(model.name)
    )
    client.get(reverse("secrets_admin:secret_list"))
    assert calls == []  # warm: no ListSecrets
    client.post(reverse("secrets_admin:secret_list_refresh"))
    client.get(reverse("secrets_admin:secret_list"))
    assert calls == ["ListSecrets"]


def test_grid_costs_one_describe_and_one_get(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret("a-secrets", STANDARD_DOC)
    calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: calls.append(model.name)
    )
    response = as_user(auditor).get(reverse("secrets_admin:secret_detail", args=["a-secrets"]))
    assert response.status_code == HTTPStatus.OK
    assert sorted(calls) == ["DescribeSecret", "GetSecretValue"]


def test_grid_masks_values_marks_missing_and_production(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    html = (
        as_user(engineer)
        .get(reverse("secrets_admin:secret_detail", args=["a-secrets"]))
        .content.decode()
    )
    for canary in CANARIES:
        assert canary not in html
    assert "production" in html
    assert html.count("missing</span>") == 2  # db.port is only in dev
    assert "number" in html  # the type of db.port


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("DATABASE_URL=x", "not valid JSON"),
        ('{"dev": "flat"}', "holds a string"),
        ("[1,2]", "JSON array"),
    ],
)
def test_non_conforming_secret_shows_reasons_and_no_grid(
    as_user: Any, auditor: Any, make_secret: Any, value: str, shown: str
) -> None:
    make_secret("odd-secrets", value)
    html = (
        as_user(auditor)
        .get(reverse("secrets_admin:secret_detail", args=["odd-secrets"]))
        .content.decode()
    )
    assert shown in html
    assert 'class="grid"' not in html
    assert "DATABASE_URL=x" not in html


def test_binary_and_valueless_and_deleted_secrets_are_explained(
    as_user: Any, auditor: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("bin-secrets", binary=b"\x00CANARY-binary")
    make_secret("none-secrets")
    make_secret("gone-secrets", STANDARD_DOC)
    sm.delete_secret(SecretId="gone-secrets", RecoveryWindowInDays=7)
    client = as_user(auditor)
    binary = client.get(reverse("secrets_admin:secret_detail", args=["bin-secrets"]))
    assert b"binary" in binary.content and b"CANARY" not in binary.content
    none = client.get(reverse("secrets_admin:secret_detail", args=["none-secrets"]))
    assert b"no value yet" in none.content
    gone = client.get(reverse("secrets_admin:secret_detail", args=["gone-secrets"]))
    assert b"scheduled for deletion" in gone.content


def test_missing_secret_is_a_404_with_a_sentence(as_user: Any, auditor: Any) -> None:
    response = as_user(auditor).get(reverse("secrets_admin:secret_detail", args=["nope-secrets"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"can&#x27;t find" in response.content


@pytest.mark.parametrize("name", ["a/b/c-secrets", "x+y=z.w@v_u-secrets", "A-secrets"])
def test_any_name_aws_allows_routes_and_renders(
    as_user: Any, auditor: Any, make_secret: Any, name: str
) -> None:
    make_secret(name, STANDARD_DOC)
    url = reverse("secrets_admin:secret_detail", args=[name])
    response = as_user(auditor).get(url)
    assert response.status_code == HTTPStatus.OK
    assert name.encode() in response.content


def test_names_without_the_suffix_are_not_served(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("legacy-stripe-dev", "{}")
    response = as_user(auditor).get(
        reverse("secrets_admin:secret_detail", args=["legacy-stripe-dev"])
    )
    assert response.status_code == HTTPStatus.NOT_FOUND


def _reveal(client: Any, version: str, env: str = "dev", htmx: bool = True) -> Any:
    return client.post(
        reverse("secrets_admin:cell_reveal", args=["a-secrets"]),
        {
            "version_id": version,
            "environment": env,
            "service": "stripe",
            "key": "secret_key",
            **({"reason": "a test reveal"} if env == "main" else {}),  # asked in main
        },
        headers={"HX-Request": "true"} if htmx else {},
    )


def test_engineer_reveals_one_value_audited_and_not_cached(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    response = _reveal(as_user(engineer), version)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "CANARY-dev-91be" in html and "CANARY-main-c0de" not in html
    assert html.lstrip().startswith('<div id="cell-value"')
    assert "no-store" in response["Cache-Control"]
    actions = list(AuditEvent.objects.values_list("action", "outcome"))
    assert actions == [("reveal", "succeeded")]  # one row per reveal, committed before the value
    event = AuditEvent.objects.get(action="reveal", outcome="succeeded")
    assert (event.actor, event.environment, event.key) == (engineer, "dev", "secret_key")
    assert event.fingerprint_after and "CANARY" not in event.fingerprint_after


def test_reveal_without_javascript_renders_a_page(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    html = _reveal(as_user(engineer), version, htmx=False).content.decode()
    assert "<html" in html and "CANARY-dev-91be" in html


def test_auditor_may_not_reveal(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    response = _reveal(as_user(auditor), version)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"CANARY" not in response.content
    assert not AuditEvent.objects.exists()


def test_reveal_by_get_is_refused(as_user: Any, engineer: Any) -> None:
    response = as_user(engineer).get(reverse("secrets_admin:cell_reveal", args=["a-secrets"]))
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_reveal_of_a_cell_not_in_that_version_is_a_conflict(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    response = _reveal(as_user(engineer), version, env="uat")
    assert response.status_code == HTTPStatus.CONFLICT
    assert b"Reload the page" in response.content


def test_reveal_returns_nothing_when_the_audit_cannot_be_written(
    as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: calls.append(model.name)
    )

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(AuditEvent, "save", broken_save)
    response = _reveal(as_user(engineer), version)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert b"CANARY" not in response.content
    assert b"audit log could not record" in response.content
    assert calls == ["GetSecretValue"]  # read, but not sent: its audit row failed


def test_canary_values_appear_nowhere_but_the_reveal(
    as_user: Any, engineer: Any, make_secret: Any, caplog: Any, django_db_blocker: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC, Description="canary test")
    client = as_user(engineer)
    bodies = [
        client.get(reverse("secrets_admin:secret_list")).content,
        client.get(
            reverse("secrets_admin:secret_list"), {"q": "a-"}, headers={"HX-Request": "true"}
        ).content,
        client.get(reverse("secrets_admin:secret_detail", args=["a-secrets"])).content,
    ]
    version = aws.read_current("a-secrets").version_id
    revealed = _reveal(client, version)
    assert b"CANARY-dev-91be" in revealed.content
    dump = _database_dump()
    for canary in CANARIES:
        for body in bodies:
            assert canary.encode() not in body
        assert canary not in caplog.text
        assert canary not in dump
        assert canary not in str(dict(client.session))


def _database_dump() -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_grid_reveal_buttons_post_their_cell_as_json_through_one_form(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    client = as_user(engineer)
    html = client.get(reverse("secrets_admin:secret_detail", args=["a-secrets"])).content.decode()
    assert html.count('id="reveal-form"') == 1
    assert html.count('name="cell"') == 4  # one button per present cell
    version = aws.read_current("a-secrets").version_id
    response = client.post(
        reverse("secrets_admin:cell_reveal", args=["a-secrets"]),
        {"version_id": version, "cell": '["dev", "stripe", "secret_key"]'},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK
    assert "CANARY-dev-91be" in response.content.decode()


@pytest.mark.parametrize("cell", ['["dev", "stripe"]', "not json", '["dev", 1, "k"]', "{}"])
def test_a_malformed_cell_is_refused_as_incomplete(
    as_user: Any, engineer: Any, make_secret: Any, cell: str
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    response = as_user(engineer).post(
        reverse("secrets_admin:cell_reveal", args=["a-secrets"]),
        {"version_id": version, "cell": cell},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"CANARY" not in response.content


def test_no_template_comment_leaks_into_a_page(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    """Django's ``{# #}`` comments are one line only: a multi-line one renders as text."""
    make_secret("a-secrets", CANARY_DOC)
    client = as_user(engineer)
    for url in (
        reverse("secrets_admin:secret_list"),
        reverse("secrets_admin:secret_detail", args=["a-secrets"]),
        reverse("secrets_admin:secret_edit", args=["a-secrets"]),
    ):
        html = client.get(url).content.decode()
        assert "{#" not in html and "#}" not in html, url
