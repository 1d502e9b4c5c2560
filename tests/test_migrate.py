"""Promote rows between environments, and the migration wizard."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from secrets_admin import audit, aws, errors, forms, migration
from secrets_admin.changes import environment_copy, protocol
from secrets_admin.documents import JsonNumber
from secrets_admin.models import AuditEvent, ChangeRequest

from .test_views_secrets import _database_dump

pytestmark = pytest.mark.django_db

DOC = {
    "sandbox": {"stripe": {"public_key": "pk_CANARY-sand"}},
    "dev": {
        "stripe": {"public_key": "pk_CANARY-dev", "secret_key": "sk_CANARY-devsecret"},
        "db": {"port": 5432, "tls": True},
    },
    "main": {"stripe": {"public_key": "pk_CANARY-main"}},
}


def _context(user: Any) -> audit.Context:
    return audit.Context(user=user)


def _current(name: str) -> Any:
    return json.loads(aws.read_current(name).text or "")


# ----------------------------------------------------------------------------------------
# Promote: the use case


def test_environment_copy_with_values_copies_exact_values_into_an_unprotected_environment(
    make_secret: Any, engineer: Any
) -> None:
    make_secret("a-secrets", DOC)
    base = aws.read_current("a-secrets").version_id
    result = environment_copy.environment_copy(
        name="a-secrets",
        base_version_id=base,
        source="dev",
        target="sandbox",
        rows=[("stripe", "secret_key"), ("db", "")],
        with_values=True,
        context=_context(engineer),
        change_id=protocol.new_change_id(user=engineer, name="a-secrets", base_version_id=base),
    )
    after = aws.read_current("a-secrets")
    assert after.version_id == result.new_version_id != base
    doc = json.loads(after.text or "")
    assert doc["sandbox"] == {
        "stripe": {"public_key": "pk_CANARY-sand", "secret_key": "sk_CANARY-devsecret"},
        "db": {"port": 5432, "tls": True},
    }
    assert '"db":{"port":5432,"tls":true}},"main"' in (after.text or "")  # types kept
    assert doc["main"] == DOC["main"] and doc["dev"] == DOC["dev"]


def test_environment_copy_structure_only_adds_empty_values_and_never_blanks_existing_ones(
    make_secret: Any, engineer: Any
) -> None:
    make_secret("a-secrets", DOC)
    base = aws.read_current("a-secrets").version_id
    environment_copy.environment_copy(
        name="a-secrets",
        base_version_id=base,
        source="dev",
        target="sandbox",
        rows=[("stripe", "")],
        with_values=False,
        context=_context(engineer),
        change_id=protocol.new_change_id(user=engineer, name="a-secrets", base_version_id=base),
    )
    assert _current("a-secrets")["sandbox"]["stripe"] == {
        "public_key": "pk_CANARY-sand",
        "secret_key": "",
    }


def test_environment_copy_into_main_creates_a_change_request(
    make_secret: Any, engineer: Any
) -> None:
    """Promotion into main creates a change request; nothing is current until an approver
    approves it."""
    make_secret("a-secrets", DOC)
    base = aws.read_current("a-secrets").version_id
    result = environment_copy.environment_copy(
        name="a-secrets",
        base_version_id=base,
        source="dev",
        target="main",
        rows=[("stripe", "secret_key")],
        with_values=True,
        context=_context(engineer),
        change_id=protocol.new_change_id(user=engineer, name="a-secrets", base_version_id=base),
    )
    assert isinstance(result, ChangeRequest)
    assert result.status == ChangeRequest.Status.OPEN
    assert result.environments == ["main"]
    assert result.author == engineer
    assert aws.read_current("a-secrets").version_id == base


def test_environment_copy_changeset_refuses_rows_not_in_the_source() -> None:
    with pytest.raises(errors.InvalidChange, match="not in dev"):
        environment_copy.environment_copy_changeset(
            DOC, source="dev", target="main", rows=[("nope", "x")], with_values=True
        )
    with pytest.raises(errors.InvalidChange, match="at least one row"):
        environment_copy.environment_copy_changeset(
            DOC, source="dev", target="main", rows=[], with_values=True
        )


# ----------------------------------------------------------------------------------------
# Promote: the views


def _copy(client: Any, step: str, **extra: str) -> Any:
    data = {
        "a": "dev",
        "b": "sandbox",
        "base_version_id": aws.read_current("a-secrets").version_id,
        forms.field_name("row", "stripe", "secret_key"): "on",
        forms.field_name("copy_service", "db"): "on",
        "mode": "values",
        **extra,
    }
    return client.post(reverse(f"secrets_admin:environment_copy_{step}", args=["a-secrets"]), data)


def test_diff_page_offers_promotion_to_engineers_not_auditors(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    url = reverse("secrets_admin:environment_diff", args=["a-secrets"])
    html = as_user(engineer).get(url, {"a": "dev", "b": "sandbox"}).content.decode()
    assert reverse("secrets_admin:environment_copy_review", args=["a-secrets"]) in html
    assert 'name="row:[&quot;stripe&quot;, &quot;secret_key&quot;]"' in html
    html = as_user(auditor).get(url, {"a": "dev", "b": "sandbox"}).content.decode()
    assert reverse("secrets_admin:environment_copy_review", args=["a-secrets"]) not in html


def test_environment_copy_review_then_save_lands_without_values_in_the_pages(
    as_user: Any, engineer: Any, make_secret: Any, caplog: Any
) -> None:
    make_secret("a-secrets", DOC)
    client = as_user(engineer)
    review = _copy(client, "review")
    html = review.content.decode()
    assert review.status_code == HTTPStatus.OK
    assert "Copy values from dev to sandbox" in html
    assert "3 added" in html
    assert "CANARY" not in html  # names only: values are read on the server
    change_id = html.split('name="change_id" value="')[1].split('"')[0]
    saved = _copy(client, "save", change_id=change_id)
    assert saved.status_code == HTTPStatus.FOUND
    assert _current("a-secrets")["sandbox"]["db"] == {"port": 5432, "tls": True}
    page = client.get(saved["Location"]).content.decode()
    assert "Saved as version" in page and "CANARY" not in page
    assert "CANARY" not in _database_dump() and "CANARY" not in caplog.text


def test_environment_copy_into_main_through_the_page_opens_a_change_request(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", DOC)
    client = as_user(engineer)
    review = _copy(client, "review", b="main").content.decode()
    assert "main is a protected environment" in review
    assert '<textarea id="comment" name="comment"' in review
    assert ">Propose change request</button>" in review
    assert "Save as one new version" not in review
    base = aws.read_current("a-secrets").version_id
    change_id = protocol.new_change_id(user=engineer, name="a-secrets", base_version_id=base)
    saved = _copy(client, "save", b="main", change_id=change_id, comment="copy for the launch")
    request_ = ChangeRequest.objects.get()
    assert request_.comment == "copy for the launch"
    assert saved["Location"] == reverse("secrets_admin:change_request_detail", args=[request_.pk])
    page = client.get(saved["Location"]).content.decode()
    assert f"change request #{request_.pk}" in page
    assert aws.read_current("a-secrets").version_id == base


# ----------------------------------------------------------------------------------------
# .env parsing


def test_env_file_comments_quotes_export_multiline_and_duplicates() -> None:
    text = (
        "# a comment\n"
        "export STRIPE_SECRET_KEY='sk_1 # not a comment'\n"
        'STRIPE_PUBLIC_KEY="pk_1"  # trailing comment\n'
        'DB_CERT="line one\nline two"\n'
        "DB_HOST=one\n"
        "DB_HOST=two\n"
        "NOVALUE\n"
        "REF=${DB_HOST}\n"
        "not a binding at all !!\n"
    )
    parsed = migration.parse_env_file(text)
    assert parsed.values["STRIPE_SECRET_KEY"] == "sk_1 # not a comment"
    assert parsed.values["STRIPE_PUBLIC_KEY"] == "pk_1"
    assert parsed.values["DB_CERT"] == "line one\nline two"
    assert parsed.values["DB_HOST"] == "two"
    assert parsed.values["REF"] == "${DB_HOST}"  # no interpolation: values stay literal
    assert parsed.values["NOVALUE"] is None
    assert parsed.duplicates == {"DB_HOST": 2}
    assert parsed.error_lines == [10]  # the multi-line value spans lines 4-5
    assert "sk_1" not in repr(parsed)
    read = migration.read_env_source(".env", parsed, environment="dev", service="")
    cells = {(e.service, e.key): e for e in read.entries}
    assert set(cells) == {
        ("stripe", "secret_key"),
        ("stripe", "public_key"),
        ("db", "cert"),
        ("db", "host"),
    }
    assert any("REF names no service" in p for p in read.problems)
    assert cells[("stripe", "secret_key")].value == "sk_1 # not a comment"
    assert "defined 2 times" in cells[("db", "host")].note
    assert any("NOVALUE has no '='" in p for p in read.problems)
    assert any("Line 10" in p for p in read.problems)


def test_env_file_with_a_service_strips_its_prefix_and_lowercases_keys() -> None:
    parsed = migration.parse_env_file("STRIPE_SECRET_KEY=a\nWEBHOOK=b\n")
    read = migration.read_env_source(".env", parsed, environment="dev", service="stripe")
    assert [(e.service, e.key) for e in read.entries] == [
        ("stripe", "secret_key"),
        ("stripe", "webhook"),
    ]


def test_env_file_garbage_never_raises() -> None:
    for text in ("", "\x00\x01", "=", "'unterminated", "A=1\r\nB=2\r\n", "export\n"):
        migration.read_env_source(
            ".env", migration.parse_env_file(text), environment="dev", service=""
        )


def test_plan_marks_case_twins_bad_names_conflicts_and_source_clashes() -> None:
    def fp(value: Any) -> str:
        return f"fp-{value}"

    existing = {"dev": {"stripe": {"secret_key": "old"}}}
    reads = [
        migration.Read(
            "one",
            [
                migration.Entry("one", "dev", "stripe", "secret_key", "new"),
                migration.Entry("one", "dev", "stripe", "Secret_Key", "x"),
                migration.Entry("one", "dev", " bad", "k", "y"),
                migration.Entry("one", "dev", "db", "port", JsonNumber("5432")),
            ],
        ),
        migration.Read("two", [migration.Entry("two", "dev", "db", "port", "other")]),
    ]
    plan = migration.plan(
        target="a-secrets",
        existing=existing,
        base_version_id="v1",
        reads=reads,
        overwrite=False,
        fingerprint=fp,
    )
    by = [(c.service, c.key, c.status) for c in plan.cells]
    assert by == [
        ("stripe", "secret_key", "conflict"),
        ("stripe", "Secret_Key", "skipped"),
        (" bad", "k", "skipped"),
        ("db", "port", "new"),
        ("db", "port", "skipped"),
    ]
    assert "differs only in case" in plan.cells[1].note
    assert "leading or trailing spaces" in plan.cells[2].note
    assert plan.cells[0].existing_fingerprint == "fp-old"
    assert plan.writes == 1
    overwritten = migration.plan(
        target="a-secrets",
        existing=existing,
        base_version_id="v1",
        reads=reads,
        overwrite=True,
        fingerprint=fp,
    )
    assert overwritten.cells[0].status == "overwrite" and overwritten.writes == 2
    assert overwritten.digest != plan.digest


def test_json_sources_empty_flat_nested_and_not_json() -> None:
    assert (
        "empty" in migration.read_json_source("s", "", environment="dev", service="x").problems[0]
    )
    assert (
        "empty" in migration.read_json_source("s", "{}", environment="dev", service="").problems[0]
    )
    assert (
        "choose the service"
        in migration.read_json_source("s", '{"k": "v"}', environment="dev", service="").problems[0]
    )
    assert (
        "not a JSON object"
        in migration.read_json_source("s", "KEY=v", environment="dev", service="x").problems[0]
    )
    nested = migration.read_json_source(
        "s", '{"stripe": {"k": "v"}, "db": {}}', environment="dev", service=""
    )
    assert [(e.service, e.key) for e in nested.entries] == [("stripe", "k")]
    assert "has no keys" in nested.problems[0]


# ----------------------------------------------------------------------------------------
# The wizard end to end

ENV_FILE = b"""# shop's old .env for main
export STRIPE_SECRET_KEY="sk_CANARY-envfile"
STRIPE_WEBHOOK_SECRET='whsec_CANARY-env # kept'
DATABRICKS_TOKEN=tok_CANARY-one
DATABRICKS_TOKEN=tok_CANARY-two
DB_CERT="-----BEGIN CANARY-CERT-----
abc
-----END-----"
"""
LEGACY_VALUES = ("CANARY-legacy1", "CANARY-legacy2", "CANARY-legacy3")
ALL_CANARIES = (
    *LEGACY_VALUES,
    "CANARY-envfile",
    "CANARY-env # kept",
    "CANARY-one",
    "CANARY-two",
    "CANARY-CERT",
)


def _legacy_account(make_secret: Any) -> None:
    make_secret("shop-stripe-dev", {"secret_key": "sk_CANARY-legacy1", "public_key": "pk_1"})
    make_secret("shop-sandbox", {"stripe": {"secret_key": "sk_CANARY-legacy2"}, "db": {"port": 1}})
    make_secret("shop-databricks", {"token": "CANARY-legacy3"})


def _source_rows(*rows: tuple[str, str, str]) -> dict[str, list[str]]:
    """The wizard's per-secret rows (name, environment, service) as posted form lists."""
    data: dict[str, list[str]] = {}
    for row in rows:
        for field_, value in forms.migration_source_fields(*row):
            data.setdefault(field_, []).append(value)
    return data


def _wizard_fields() -> dict[str, Any]:
    legacy = ["shop-stripe-dev", "shop-sandbox", "shop-databricks"]
    mapping = {"shop-stripe-dev": ("dev", "stripe"), "shop-sandbox": ("sandbox", "")}
    mapping["shop-databricks"] = ("dev", "databricks")
    data: dict[str, Any] = {"repo": "shop", "legacy": legacy, "dotenv_env": "main"}
    data.update(_source_rows(*((name, env, svc) for name, (env, svc) in mapping.items())))
    return data


def _hidden(html: str, name: str) -> str:
    return html.split(f'name="{name}" value="')[1].split('"')[0]


def test_wizard_from_three_legacy_secrets_and_an_env_file_to_one_unified_secret(
    as_user: Any, admin: Any, make_secret: Any, caplog: Any, settings: Any
) -> None:
    settings.PORTAL_PROTECTED_ENVIRONMENTS = ["main"]
    _legacy_account(make_secret)
    client = as_user(admin)
    url = reverse("secrets_admin:secret_migrate")

    choose = client.get(url).content.decode()
    assert "shop-stripe-dev" in choose and 'value="shop"' in choose  # repo suggested
    assert 'value="dev"' in choose and 'value="stripe"' in choose  # mapping suggested

    data = _wizard_fields()
    upload = SimpleUploadedFile(".env", ENV_FILE, content_type="text/plain")
    preview = client.post(
        reverse("secrets_admin:secret_migrate_preview"), {**data, "dotenv_file": upload}
    )
    html = preview.content.decode()
    assert preview.status_code == HTTPStatus.OK
    assert "shop-secrets: created" in html
    assert "defined 2 times" in html  # the duplicate DATABRICKS_TOKEN
    for value in LEGACY_VALUES:
        assert value not in html  # legacy values never reach the browser
    # the .env text is carried back in the review's form (the person's own input), once
    assert html.count("CANARY-envfile") == 2  # two forms: apply, and back to the choices

    apply_data = {
        **data,
        "dotenv_text": ENV_FILE.decode(),
        "digest": _hidden(html, "digest"),
        "change_id": _hidden(html, "change_id"),
    }
    done = client.post(reverse("secrets_admin:secret_migrate_apply"), apply_data)
    done_html = done.content.decode()
    assert done.status_code == HTTPStatus.OK, done_html
    assert "Created shop-secrets" in done_html

    doc = _current("shop-secrets")
    assert doc["dev"]["stripe"] == {"secret_key": "sk_CANARY-legacy1", "public_key": "pk_1"}
    assert doc["dev"]["databricks"] == {"token": "CANARY-legacy3"}
    assert doc["sandbox"] == {"stripe": {"secret_key": "sk_CANARY-legacy2"}, "db": {"port": 1}}
    assert doc["main"]["stripe"] == {
        "secret_key": "sk_CANARY-envfile",
        "webhook_secret": "whsec_CANARY-env # kept",
    }
    assert doc["main"]["databricks"] == {"token": "tok_CANARY-two"}
    assert doc["main"]["db"] == {"cert": "-----BEGIN CANARY-CERT-----\nabc\n-----END-----"}
    # the legacy secrets are untouched, and deletion is only offered
    assert aws.describe("shop-stripe-dev").meta.scheduled_for_deletion is False
    assert reverse("secrets_admin:legacy_secret_schedule_deletion") in done_html

    migrate_event = AuditEvent.objects.get(action="secret_migrate")
    assert migrate_event.detail["sources"] == [
        "shop-stripe-dev",
        "shop-sandbox",
        "shop-databricks",
        ".env file",
    ]
    for text in (done_html, choose, _database_dump(), caplog.text):
        for canary in ALL_CANARIES:
            assert canary not in text, canary


def test_wizard_updates_an_existing_secret_and_refuses_a_changed_source(
    as_user: Any, admin: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", {"sandbox": {}, "dev": {"stripe": {"public_key": "pk_1"}}})
    make_secret("shop-stripe-dev", {"secret_key": "sk_CANARY-legacy1", "public_key": "pk_other"})
    client = as_user(admin)
    url = reverse("secrets_admin:secret_migrate")
    data = {
        "repo": "shop",
        "legacy": ["shop-stripe-dev"],
        **_source_rows(("shop-stripe-dev", "dev", "stripe")),
    }
    html = client.post(reverse("secrets_admin:secret_migrate_preview"), data).content.decode()
    assert "updated on version" in html and "conflict" in html
    apply = {
        **data,
        "digest": _hidden(html, "digest"),
        "change_id": _hidden(html, "change_id"),
    }
    url = reverse("secrets_admin:secret_migrate_apply")
    stale = client.post(url, {**apply, "overwrite": "on"})  # not what was reviewed
    assert stale.status_code == HTTPStatus.BAD_REQUEST
    assert "changed since the preview" in stale.content.decode()
    assert client.post(url, apply).status_code == HTTPStatus.OK
    assert _current("shop-secrets")["dev"]["stripe"] == {
        "public_key": "pk_1",  # the conflict is kept
        "secret_key": "sk_CANARY-legacy1",
    }


def test_wizard_bad_mappings_and_empty_secrets_are_shown_not_crashed(
    as_user: Any, admin: Any, make_secret: Any
) -> None:
    make_secret("shop-empty-dev", "{}")
    make_secret("shop-bin-dev", binary=b"\x00\x01")
    make_secret("shop-odd-dev", {"Key": "a", "key": "b", " spaced": "c"})
    client = as_user(admin)
    data = {
        "repo": "shop",
        "legacy": ["shop-empty-dev", "shop-bin-dev", "shop-odd-dev", "absent-dev"],
        **_source_rows(
            ("shop-empty-dev", "dev", "empty"),
            ("shop-bin-dev", "de\x01v", ""),
            ("shop-odd-dev", "my env", "odd"),
            ("absent-dev", "my env", "x"),
        ),
        "dotenv_text": "FOO=1\n",
        "dotenv_env": "dev",
    }
    response = client.post(reverse("secrets_admin:secret_migrate_preview"), data)
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "empty object" in html
    assert "control character" in html
    assert "leading or trailing spaces" in html  # the key &quot; spaced&quot;
    assert "differs only in case from &#x27;Key&#x27;" in html
    assert "can&#x27;t be an Amplify branch name" in html  # "my env"
    assert "absent-dev" in html
    assert "FOO names no service" in html
    bad_repo = client.post(
        reverse("secrets_admin:secret_migrate_preview"), {**data, "repo": "bad repo"}
    )
    assert bad_repo.status_code == HTTPStatus.BAD_REQUEST


def test_schedule_deletion_is_audited_with_a_recovery_window(
    as_user: Any, admin: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("shop-stripe-dev", {"k": "v"})
    make_secret("shop-secrets", {"dev": {}})
    client = as_user(admin)
    url = reverse("secrets_admin:legacy_secret_schedule_deletion")
    refused = client.post(url, {"name": "shop-stripe-dev", "recovery_days": "3"}, follow=True)
    assert "recovery window of 7 to 30 days" in refused.content.decode()
    unified = client.post(url, {"name": "shop-secrets", "recovery_days": "7"}, follow=True)
    assert "legacy secrets only" in unified.content.decode()
    done = client.post(url, {"name": "shop-stripe-dev", "recovery_days": "7"}, follow=True)
    assert "scheduled for deletion" in done.content.decode()
    assert sm.describe_secret(SecretId="shop-stripe-dev").get("DeletedDate")
    assert sm.describe_secret(SecretId="shop-secrets").get("DeletedDate") is None
    events = AuditEvent.objects.filter(action="secret_delete_schedule", secret="shop-stripe-dev")
    assert [e.outcome for e in events.order_by("seq")] == ["attempted", "succeeded"]
    assert events.last().detail["recovery_days"] == 7  # type: ignore[union-attr]
