"""Credential hygiene: the value-free index of the account (filled by the scan and the background
listing refresh, kept current by portal saves), the service matrix, reused and stale credentials,
adoption of the standard, and the canary: no value in the index, the pages or the exports."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core import serializers
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.urls import reverse

from secrets_admin import aws, documents, index, lint, listing, reads
from secrets_admin.forms import field_name
from secrets_admin.hygiene import adoption, reuse, staleness
from secrets_admin.models import IndexCell, IndexedSecret

from .test_views_editor import post_form

pytestmark = pytest.mark.django_db

CANARY_MAIN = "CANARY-main-4b1d"
CANARY_DEV = "CANARY-dev-77aa"
CANARY_SHARED = "CANARY-shared-e9c3"
CANARY_SANDBOX = "CANARY-sandbox-0f0f"
CANARIES = (CANARY_MAIN, CANARY_DEV, CANARY_SHARED, CANARY_SANDBOX)

SHOP = {
    "sandbox": {"stripe": {"secret_key": CANARY_SANDBOX, "region": "eu-west-1"}},
    "dev": {"stripe": {"secret_key": CANARY_DEV, "region": "eu-west-1"}, "db": {"port": 5432}},
    "main": {"stripe": {"secret_key": CANARY_MAIN, "region": "eu-west-1"}},
}
PAGES = ("service_matrix", "credential_reuse", "credential_staleness", "standard_adoption")


def cas_write(sm: Any, name: str, doc: Any, token: str) -> str:
    """A write from outside the portal, the way the CAS protocol makes one (stage, then move
    AWSCURRENT): never a plain PutSecretValue (moto breaks when the two are mixed)."""
    base = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
    sm.put_secret_value(
        SecretId=name, SecretString=json.dumps(doc), ClientRequestToken=token, VersionStages=["X"]
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=base
    )
    sm.update_secret_version_stage(SecretId=name, VersionStage="X", RemoveFromVersionId=token)
    return token


def cell(name: str, place: str) -> IndexCell:
    env, service, key = place.split("/")
    return IndexCell.objects.get(secret__name=name, environment=env, service=service, key=key)


def index_dump() -> str:
    return serializers.serialize("json", [*IndexedSecret.objects.all(), *IndexCell.objects.all()])


# --------------------------------------------------------------------------------------------
# The index


def test_scan_indexes_types_fingerprints_and_no_value(make_secret: Any) -> None:
    make_secret("shop-secrets", SHOP)
    make_secret("shop-stripe-dev", "{}")  # a legacy secret: listed, never read

    result = index.scan()

    assert (result.listed, result.indexed, result.values_read) == (2, 1, 1)
    key = cell("shop-secrets", "main/stripe/secret_key")
    assert key.value_type == "string" and key.credential and not key.empty
    assert key.fingerprint == reads.fingerprint(CANARY_MAIN)
    assert cell("shop-secrets", "dev/db/port").value_type == "number"
    assert not cell("shop-secrets", "dev/stripe/region").credential  # configuration
    secret = IndexedSecret.objects.get(name="shop-secrets")
    assert secret.layout == {
        "sandbox": {"stripe": 2},
        "dev": {"stripe": 2, "db": 1},
        "main": {"stripe": 2},
    }
    assert not IndexedSecret.objects.get(name="shop-stripe-dev").unified
    dump = index_dump()
    assert not any(c in dump for c in CANARIES)


def test_refresh_reads_only_changed_versions(
    make_secret: Any, sm: Any, aws_calls: list[str]
) -> None:
    make_secret("shop-secrets", SHOP)
    make_secret("cart-secrets", SHOP)
    index.scan()
    aws_calls.clear()

    assert index.scan().values_read == 0  # nothing changed: no value read
    assert "GetSecretValue" not in aws_calls

    changed = {**SHOP, "dev": {"stripe": {"secret_key": "rotated", "region": "eu-west-1"}}}
    new = cas_write(sm, "cart-secrets", changed, "c" * 32)
    aws_calls.clear()
    result = index.scan()

    assert aws_calls.count("GetSecretValue") == 1  # the new version only; the old one is indexed
    assert result.values_read == 1
    assert IndexedSecret.objects.get(name="cart-secrets").version_id == new
    rotated = cell("cart-secrets", "dev/stripe/secret_key")
    assert rotated.fingerprint == reads.fingerprint("rotated")
    assert (rotated.changed_how, rotated.changed_version) == ("history", new)
    kept = cell("cart-secrets", "main/stripe/secret_key")
    assert kept.changed_how == "created" and kept.changed_version != new


def test_history_dates_each_cell_by_the_version_that_changed_it(make_secret: Any, sm: Any) -> None:
    make_secret("shop-secrets", SHOP)
    first = sm.get_secret_value(SecretId="shop-secrets", VersionStage="AWSCURRENT")["VersionId"]
    second = cas_write(
        sm,
        "shop-secrets",
        {**SHOP, "dev": {**SHOP["dev"], "stripe": {"secret_key": "v2"}}},
        "a" * 32,
    )
    cas_write(sm, "shop-secrets", {**SHOP, "dev": {**SHOP["dev"], "stripe": {"secret_key": "v2"}}, "main": {"stripe": {"secret_key": "m3"}}}, "b" * 32)  # fmt: skip

    index.scan()  # first indexing walks the history (bounded)

    dev = cell("shop-secrets", "dev/stripe/secret_key")
    assert (dev.changed_how, dev.changed_version) == ("history", second)
    sandbox = cell("shop-secrets", "sandbox/stripe/secret_key")
    assert (sandbox.changed_how, sandbox.changed_version) == ("created", first)
    assert cell("shop-secrets", "main/stripe/secret_key").changed_version == "b" * 32


def test_history_walk_is_bounded(
    make_secret: Any, sm: Any, settings: Any, aws_calls: list[str]
) -> None:
    settings.PORTAL_INDEX_HISTORY_VERSIONS = 1
    make_secret("shop-secrets", SHOP)
    for i, token in enumerate(("a" * 32, "b" * 32, "c" * 32)):
        cas_write(sm, "shop-secrets", {**SHOP, "db": {"n": {"v": str(i)}}}, token)
    aws_calls.clear()

    index.scan()

    assert aws_calls.count("GetSecretValue") == 2  # the current version and one before it
    unchanged = cell("shop-secrets", "main/stripe/secret_key")
    assert unchanged.changed_how == "since" and unchanged.changed_version == ""


def test_staleness_follows_history_and_the_per_environment_limit(
    make_secret: Any, sm: Any, settings: Any
) -> None:
    settings.PORTAL_STALE_DAYS = "main=90,*=180"
    make_secret("shop-secrets", SHOP)
    index.scan()
    created = cell("shop-secrets", "main/stripe/secret_key").changed_at
    assert created is not None

    soon = staleness.staleness(visible=None, now=created + timedelta(days=100))
    later = staleness.staleness(visible=None, now=created + timedelta(days=200))

    assert [c.place.cell for c in soon.cells] == ["main/stripe/secret_key"]
    assert soon.cells[0].limit_days == 90 and soon.cells[0].age_days == 100
    assert soon.by_environment == {"main": 1}
    assert {c.place.cell for c in later.cells} == {
        "main/stripe/secret_key",
        "dev/stripe/secret_key",
        "sandbox/stripe/secret_key",
    }  # the region, a number and configuration keys are not credentials
    findings = adoption.findings(now=created + timedelta(days=100))
    assert [(f.rule, f.secret, f.environment) for f in findings] == [
        ("stale.credential", "shop-secrets", "main")
    ]


def test_malformed_stale_days_is_named(settings: Any) -> None:
    settings.PORTAL_STALE_DAYS = "main=ninety"
    with pytest.raises(Exception, match="PORTAL_STALE_DAYS: 'main=ninety'"):
        staleness.days_for("main")


# --------------------------------------------------------------------------------------------
# Portal saves and writes from outside the portal


def _save_in_editor(client: Any, name: str, place: str, value: str) -> Any:
    base = aws.read_current(name).version_id
    reviewed = client.post(
        reverse("secrets_admin:secret_edit_review", args=[name]),
        {"base_version_id": base, field_name("set", *place.split("/")): value},
    )
    assert reviewed.status_code == HTTPStatus.OK
    saved = post_form(client, reviewed.content.decode(), "save")
    assert saved.status_code == HTTPStatus.FOUND
    return aws.read_current(name)


def test_portal_save_updates_the_index_without_a_scan(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", SHOP)
    index.scan()
    before = cell("shop-secrets", "sandbox/stripe/secret_key")

    saved = _save_in_editor(as_user(engineer), "shop-secrets", "dev/stripe/secret_key", "typed")

    changed = cell("shop-secrets", "dev/stripe/secret_key")
    assert changed.fingerprint == reads.fingerprint("typed")
    assert (changed.changed_how, changed.changed_by) == ("portal", engineer.username)
    assert changed.changed_version == saved.version_id
    kept = cell("shop-secrets", "sandbox/stripe/secret_key")
    assert (kept.changed_at, kept.changed_how) == (before.changed_at, before.changed_how)
    assert IndexedSecret.objects.get(name="shop-secrets").version_id == saved.version_id


def test_indexing_a_saved_document_makes_no_aws_call(
    as_user: Any, engineer: Any, make_secret: Any, aws_calls: list[str]
) -> None:
    make_secret("shop-secrets", SHOP)
    index.scan()
    saved = _save_in_editor(as_user(engineer), "shop-secrets", "dev/stripe/secret_key", "typed")
    aws_calls.clear()
    index.record_write(
        name="shop-secrets", version_id=saved.version_id, document=documents.parse(saved.text or "")
    )
    assert aws_calls == []  # the saved document is at hand
    assert cell("shop-secrets", "dev/stripe/secret_key").changed_version == saved.version_id


@pytest.mark.django_db(transaction=True)
def test_an_index_write_that_loses_a_deadlock_is_written_again(
    make_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    make_secret("shop-secrets", SHOP)
    index.scan()
    real = index.recount_shared
    failures = [OperationalError("deadlock detected")]

    def recount_once_deadlocked(fingerprints: Any) -> None:
        if failures:
            raise failures.pop()
        real(fingerprints)

    monkeypatch.setattr(index, "recount_shared", recount_once_deadlocked)
    document = json.loads(json.dumps(SHOP))
    document["dev"]["stripe"]["secret_key"] = "rotated"
    index.record_write(name="shop-secrets", version_id="v-after-deadlock", document=document)
    assert failures == []
    assert IndexedSecret.objects.get(name="shop-secrets").version_id == "v-after-deadlock"
    assert cell("shop-secrets", "dev/stripe/secret_key").changed_version == "v-after-deadlock"


#: Two index writes at once in PostgreSQL (threads of one process, a connection each): the first
#: is held open after its recount while the second runs; then the shared flags are printed.
CONCURRENT_INDEX_WRITES = """
import threading
import django; django.setup()
from django.db import connection
from secrets_admin import index
from secrets_admin.models import IndexCell

def doc(value):
    return {"dev": {"stripe": {"secret_key": value}}}

for name, value in SEED:
    index.record_write(name=name, version_id="v1", document=doc(value))
held, go = threading.Event(), threading.Event()
real = index.recount_shared

def recount(fingerprints):
    real(fingerprints)
    if threading.current_thread().name == "first":
        held.set()
        go.wait(20)

index.recount_shared = recount

def write(name, value):
    try:
        index.record_write(name=name, version_id="v2", document=doc(value))
    finally:
        connection.close()

first = threading.Thread(target=write, args=WRITES[0], name="first")
first.start()
held.wait(20)
second = threading.Thread(target=write, args=WRITES[1], name="second")
second.start()
second.join(1.0)  # it may finish, or wait for the first to commit
go.set()
first.join()
second.join()
print(sorted(IndexCell.objects.values_list("secret__name", "shared")))
"""


def test_two_index_writes_at_once_in_postgresql_leave_the_shared_flags_exact() -> None:
    """a-secrets drops the credential b-secrets holds while c-secrets takes it up: b and c
    share it afterwards, whichever write counts first."""
    import subprocess
    import sys

    from .scratch_db import ROOT, portal_env, scratch_database

    seed = [("a-secrets", "X"), ("b-secrets", "X"), ("c-secrets", "C")]
    writes = [("a-secrets", "A"), ("c-secrets", "X")]
    script = f"SEED = {seed!r}\nWRITES = {writes!r}\n" + CONCURRENT_INDEX_WRITES
    with scratch_database("postgres") as url:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=portal_env(url),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert done.stdout.strip() == repr(
        [("a-secrets", False), ("b-secrets", True), ("c-secrets", True)]
    )


def test_portal_save_found_by_the_scan_is_credited_from_the_audit_log(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", SHOP)
    index.scan()

    saved = _save_in_editor(as_user(engineer), "shop-secrets", "sandbox/stripe/secret_key", "x")
    index.scan()

    changed = cell("shop-secrets", "sandbox/stripe/secret_key")
    assert (changed.changed_how, changed.changed_by) == ("portal", engineer.username)
    assert changed.changed_version == saved.version_id


@pytest.mark.django_db(transaction=True)
def test_background_listing_refresh_indexes_a_write_from_outside_the_portal(
    make_secret: Any, sm: Any, settings: Any
) -> None:
    settings.PORTAL_INDEX_ON_REFRESH = True
    make_secret("shop-secrets", SHOP)
    listing.get_listing(refresh=True)
    index.scan()
    new = cas_write(
        sm, "shop-secrets", {**SHOP, "main": {"stripe": {"secret_key": "console"}}}, "d" * 32
    )

    listing.invalidate()
    assert listing.refresh_in_background()
    deadline = time.monotonic() + 30
    while cache.get(listing.LOCK_KEY) is not None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert IndexedSecret.objects.get(name="shop-secrets").version_id == new
    changed = cell("shop-secrets", "main/stripe/secret_key")
    assert changed.fingerprint == reads.fingerprint("console")
    assert (changed.changed_how, changed.changed_version) == ("history", new)


def test_secret_gone_from_the_account_leaves_the_index(make_secret: Any, sm: Any) -> None:
    make_secret("shop-secrets", SHOP)
    make_secret("gone-secrets", SHOP)
    index.scan()
    sm.delete_secret(SecretId="gone-secrets", ForceDeleteWithoutRecovery=True)

    assert index.scan().dropped == 1
    assert not IndexedSecret.objects.filter(name="gone-secrets").exists()
    assert not IndexCell.objects.filter(secret__name="gone-secrets").exists()


# --------------------------------------------------------------------------------------------
# Reused credentials


def test_production_credential_also_in_dev_is_an_error(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    doc = {
        **SHOP,
        "dev": {"stripe": {"secret_key": CANARY_SHARED}},
        "main": {"stripe": {"secret_key": CANARY_SHARED}},
    }
    make_secret("shop-secrets", doc)
    index.scan()

    [group] = reuse.reuse_groups(visible=None)
    assert group.severity == "error"
    assert [p.cell for p in group.places] == ["main/stripe/secret_key", "dev/stripe/secret_key"]
    findings = [f for f in adoption.findings() if f.rule.startswith("reuse.")]
    assert [(f.severity, f.rule, f.secret, f.location) for f in findings] == [
        ("error", "reuse.production-elsewhere", "shop-secrets", "main > stripe > secret_key")
    ]
    assert "dev/stripe/secret_key" in findings[0].message
    client = as_user(auditor)
    page = client.get(reverse("secrets_admin:credential_reuse")).content.decode()
    assert "reuse.production-elsewhere" in page and "dev/stripe/secret_key" in page
    grid = client.get(reverse("secrets_admin:secret_detail", args=["shop-secrets"]))
    assert "same value as dev/stripe/secret_key<" in grid.content.decode()
    assert "same value as main/stripe/secret_key<" in grid.content.decode()
    assert CANARY_SHARED not in page and CANARY_SHARED not in grid.content.decode()


def test_credential_shared_by_two_repositories_is_a_warning(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", {**SHOP, "dev": {"sentry": {"dsn": CANARY_SHARED}}})
    make_secret("cart-secrets", {"dev": {"sentry": {"token": CANARY_SHARED}}})
    index.scan()

    [group] = reuse.reuse_groups(visible=None)
    assert group.problems == (("warning", "reuse.across-repositories"),)
    assert group.secrets == ["cart-secrets", "shop-secrets"]
    rules = {(f.rule, f.secret) for f in adoption.findings()}
    assert rules == {
        ("reuse.across-repositories", "shop-secrets"),
        ("reuse.across-repositories", "cart-secrets"),
    }
    grid = as_user(auditor).get(reverse("secrets_admin:secret_detail", args=["shop-secrets"]))
    assert "same value as cart-secrets: dev/sentry/token<" in grid.content.decode()


def test_configuration_empty_values_and_one_environment_are_not_reuse(make_secret: Any) -> None:
    make_secret(
        "shop-secrets",
        {
            "dev": {
                "stripe": {"region": "eu", "a": "", "b": ""},
                "x": {"k1": "same", "k2": "same"},
            },
            "main": {"stripe": {"region": "eu", "a": ""}},
        },
    )
    index.scan()
    assert reuse.reuse_groups(visible=None) == []
    assert [(f.rule, f.location) for f in adoption.findings()] == [
        ("empty.production-credential", "main > stripe > a")
    ]


def test_nobody_sees_reuse_across_secrets_outside_what_they_may_see(make_secret: Any) -> None:
    make_secret("shop-secrets", {"dev": {"s": {"k": CANARY_SHARED}}})
    make_secret("cart-secrets", {"dev": {"s": {"k": CANARY_SHARED}}})
    index.scan()
    assert reuse.reuse_groups(visible=frozenset({"shop-secrets"})) == []
    assert (
        reuse.reuse_markers(
            name="shop-secrets",
            version_id=aws.read_current("shop-secrets").version_id,
            visible=frozenset({"shop-secrets"}),
        )
        == {}
    )


# --------------------------------------------------------------------------------------------
# Service matrix and adoption


def test_service_matrix_filters_lacking_a_service_in_an_environment_and_exports_csv(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", {"dev": {"databricks": {"t": "1"}}, "main": {"stripe": {"k": "2"}}})
    make_secret("cart-secrets", {"main": {"databricks": {"t": "3"}, "stripe": {"k": "4"}}})
    index.scan()
    client = as_user(auditor)
    wanted = {"environment": "main", "service": "databricks", "presence": "missing"}

    page = client.get(reverse("secrets_admin:service_matrix"), wanted)
    csv = client.get(reverse("secrets_admin:service_matrix_export"), wanted)

    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    assert reverse("secrets_admin:secret_detail", args=["shop-secrets"]) in html
    assert reverse("secrets_admin:secret_detail", args=["cart-secrets"]) not in html
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines() == [
        "repository,secret,databricks",
        "shop,shop-secrets,-",
    ]
    everything = client.get(reverse("secrets_admin:service_matrix_export")).content.decode()
    assert everything.splitlines() == [
        "repository,secret,databricks,stripe",
        "cart,cart-secrets,main,main",
        "shop,shop-secrets,dev,main",
    ]


def test_adoption_per_repository_in_the_table_and_in_secrets_lint_json(
    as_user: Any, auditor: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("shop-secrets", SHOP)
    make_secret("shop-stripe-dev", "{}")  # legacy, still live
    make_secret("cart-secrets", {"dev": {"s": {"k": "1"}}, "main": {"s": {"k": ""}}})
    make_secret("cart-secrets-old-secrets", "{}")  # matched by cart-secrets-* as well
    make_secret("billing-main", "{}")  # legacy, repo without a unified secret
    make_secret("billing-dev", "{}")
    sm.delete_secret(SecretId="billing-dev", RecoveryWindowInDays=7)

    out = io.StringIO()
    with pytest.raises(CommandError, match="at or above error"):  # the empty production value
        call_command("secrets_lint", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())

    rows = {r["repo"]: r for r in data["adoption"]}
    shop = rows["shop"]["items"]
    assert shop["unified"]["status"] == "ok" and shop["environments"]["status"] == "ok"
    assert shop["legacy"] == {"status": "fail", "detail": "left: shop-stripe-dev"}
    cart = rows["cart"]["items"]
    assert cart["environments"] == {"status": "fail", "detail": "missing sandbox"}
    assert cart["empty"]["status"] == "fail"
    assert cart["policy"] == {
        "status": "fail",
        "detail": "cart-secrets-* also matches cart-secrets-old-secrets",
    }
    billing = rows["billing"]["items"]
    assert billing["unified"]["status"] == "fail"
    assert billing["legacy"] == {"status": "fail", "detail": "left: billing-main"}
    assert {"empty.production-credential"} <= {f["rule"] for f in data["findings"]}

    page = as_user(auditor).get(reverse("secrets_admin:standard_adoption"), {"sort": "-passed"})
    html = page.content.decode()
    assert page.status_code == HTTPStatus.OK
    assert html.index(">shop<") < html.index(">cart<") < html.index(">billing<")


# --------------------------------------------------------------------------------------------
# Canary: no value on any page or export; roles


def test_no_value_reaches_the_index_the_pages_or_the_export(
    as_user: Any, auditor: Any, engineer: Any, make_secret: Any, settings: Any
) -> None:
    settings.PORTAL_STALE_DAYS = "*=0"  # everything is stale: the pages list every credential
    make_secret("shop-secrets", {**SHOP, "dev": {"stripe": {"secret_key": CANARY_MAIN}}})
    make_secret("cart-secrets", {"main": {"stripe": {"secret_key": CANARY_MAIN}}})
    index.scan()
    for user in (auditor, engineer):
        client = as_user(user)
        for name in (*PAGES, "service_matrix_export"):
            response = client.get(reverse(f"secrets_admin:{name}"))
            assert response.status_code == HTTPStatus.OK, name
            body = response.content.decode()
            assert not any(c in body for c in CANARIES), name
    assert "shop-secrets" in body  # the export named the secrets
    report = lint.run(use_cache=False)
    assert not any(c in json.dumps(lint.as_json(report, report.findings)) for c in CANARIES)
    assert not any(c in index_dump() for c in CANARIES)


@pytest.mark.parametrize("page", PAGES)
def test_hygiene_pages_need_a_role(client: Any, as_user: Any, outsider: Any, page: str) -> None:
    assert client.get(reverse(f"secrets_admin:{page}")).status_code == HTTPStatus.FOUND
    response = as_user(outsider).get(reverse(f"secrets_admin:{page}"))
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_leftover_awspending_version_is_listed(
    as_user: Any, auditor: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("shop-secrets", SHOP)
    pending = "e" * 32
    sm.put_secret_value(
        SecretId="shop-secrets",
        SecretString=json.dumps(SHOP),
        ClientRequestToken=pending,
        VersionStages=["AWSPENDING"],
    )
    index.scan()

    assert IndexedSecret.objects.get(name="shop-secrets").pending_versions == [pending]
    page = as_user(auditor).get(reverse("secrets_admin:credential_staleness")).content.decode()
    assert pending in page and "Leftover AWSPENDING" in page


def test_secret_scheduled_for_deletion_leaves_reuse_and_comes_back_when_restored(
    make_secret: Any, sm: Any
) -> None:
    make_secret("shop-secrets", {"dev": {"s": {"k": CANARY_SHARED}}})
    make_secret("cart-secrets", {"dev": {"s": {"k": CANARY_SHARED}}})
    index.scan()
    assert len(reuse.reuse_groups(visible=None)) == 1

    sm.delete_secret(SecretId="cart-secrets", RecoveryWindowInDays=7)
    index.scan()
    assert reuse.reuse_groups(visible=None) == []
    assert not cell("shop-secrets", "dev/s/k").shared

    sm.restore_secret(SecretId="cart-secrets")
    index.scan()
    assert [g.secrets for g in reuse.reuse_groups(visible=None)] == [
        ["cart-secrets", "shop-secrets"]
    ]


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("service_matrix", {"environment": "x" * 999, "presence": "<script>", "page": "-1"}),
        ("service_matrix_export", {"service": "\x00", "presence": "missing"}),
        ("credential_reuse", {"severity": "fatal"}),
        ("credential_staleness", {"environment": "nope"}),
        ("standard_adoption", {"sort": "-__class__", "page": "9999"}),
    ],
)
def test_crafted_filters_are_ignored_not_errors(
    as_user: Any, auditor: Any, make_secret: Any, page: str, query: dict[str, str]
) -> None:
    make_secret("shop-secrets", SHOP)
    index.scan()
    response = as_user(auditor).get(reverse(f"secrets_admin:{page}"), query)
    assert response.status_code == HTTPStatus.OK
    assert b"<script>" not in response.content
