"""Production refuses weak configuration, and bad input never becomes a 500 (ASVS 5.0 V13.1,
V13.4; the load balancer's view of the portal: health checks, HEAD, forwarded client addresses)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse

from secrets_admin import aws
from secrets_admin.changesets import Edit
from secrets_admin.forms import field_name
from secrets_admin.models import AuditEvent
from secrets_admin.throttle import WRITE_VIEWS

from .conftest import STANDARD_DOC
from .test_access_matrix import HOST, MATRIX, providers, world  # noqa: F401 (fixtures)
from .test_views_editor import review, save_as
from .urltable import POST_VIEWS

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "q8Vx2LmZ7rTn4KpW9sYb3HdF6jGc1NaE5uRk0Ot"


# --------------------------------------------------------------------------------------------
# Production refuses weak configuration


def _start_in_production(**keys: str) -> subprocess.CompletedProcess[str]:
    """Load the settings the way a production process does (no PORTAL_DEMO, no PORTAL_TESTING)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PORTAL_", "DJANGO_")) and k not in ("DEBUG", "SECRET_KEY")
    }
    env.update(
        {
            "SECRET_KEY": STRONG_KEY,
            "PORTAL_FINGERPRINT_KEY": STRONG_KEY[::-1],
            "ALLOWED_HOSTS": "portal.example.test",
            "PORTAL_AUDIT_SIGNING_KEY": base64.b64encode(bytes(range(32))).decode(),
            "PORTAL_AUDIT_DEVICES": "none",
            **keys,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("variable", ["SECRET_KEY", "PORTAL_FINGERPRINT_KEY"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Short-but-random-9f3Kq", "bytes long"),
        ("x" * 64, "distinct characters"),
        ("abc123" * 10, "distinct characters"),
    ],
    ids=["short", "one-character", "few-characters"],
)
def test_production_refuses_to_start_with_a_weak_key(
    variable: str, value: str, reason: str
) -> None:
    done = _start_in_production(**{variable: value})
    assert done.returncode != 0
    assert f"{variable} is too weak" in done.stderr and reason in done.stderr
    assert value not in done.stderr  # the key itself is never printed


def test_production_starts_with_strong_keys() -> None:
    done = _start_in_production()
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def production(settings: Any) -> Any:
    """Production mode for the system checks (the process itself runs with PORTAL_TESTING)."""
    settings.PORTAL_DEMO = False
    settings.TESTING = False
    return settings


def test_several_workers_without_a_shared_cache_fail_the_system_check(production: Any) -> None:
    production.PORTAL_WORKERS = 3
    production.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(SystemCheckError, match=r"portal\.E002"):
        call_command("check")


def test_several_workers_with_a_shared_cache_or_one_worker_pass_the_system_check(
    production: Any,
) -> None:
    production.PORTAL_WORKERS = 1
    call_command("check")
    production.PORTAL_WORKERS = 4
    production.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/15",
        }
    }
    call_command("check")


# --------------------------------------------------------------------------------------------
# Client addresses behind a load balancer


def _revealed_from(client: Any, **meta: str) -> str:
    version = aws.read_current("a-secrets").version_id
    response = client.post(
        reverse("secrets_admin:cell_reveal", args=["a-secrets"]),
        {"version_id": version, "environment": "dev", "service": "stripe", "key": "secret_key"},
        **meta,
    )
    assert response.status_code == HTTPStatus.OK
    return str(AuditEvent.objects.filter(action="reveal").latest("seq").client_ip)


@pytest.mark.parametrize(
    ("count", "proxies", "remote", "forwarded", "expected"),
    [
        # No trusted proxy: the header is the client's own word and is ignored.
        (0, [], "10.0.0.5", "8.8.8.8", "10.0.0.5"),
        # One load balancer: its entry (the rightmost) is the client; a made-up left part is not.
        (1, [], "10.0.0.5", "6.6.6.6, 8.8.4.4", "8.8.4.4"),
        # A CDN and a load balancer: two hops from the right.
        (2, [], "10.0.0.5", "6.6.6.6, 8.8.4.4, 10.0.1.9", "8.8.4.4"),
        # Fewer hops than proxies (the request bypassed one): REMOTE_ADDR.
        (2, [], "10.0.0.5", "8.8.4.4", "10.0.0.5"),
        # From the load balancer's subnet: trusted.
        (1, ["10.0.0.0/16"], "10.0.0.5", "6.6.6.6, 8.8.4.4", "8.8.4.4"),
        # Straight to the pod, from outside the load balancer's subnet: header ignored.
        (1, ["10.0.0.0/16"], "172.16.5.5", "8.8.4.4", "172.16.5.5"),
    ],
    ids=["untrusted", "one-hop", "two-hops", "too-few-hops", "trusted-cidr", "untrusted-cidr"],
)
def test_audit_records_the_client_address_the_trusted_proxies_vouch_for(
    settings: Any,
    as_user: Any,
    engineer: Any,
    make_secret: Any,
    count: int,
    proxies: list[str],
    remote: str,
    forwarded: str,
    expected: str,
) -> None:
    settings.PORTAL_TRUSTED_PROXY_COUNT = count
    settings.PORTAL_TRUSTED_PROXIES = proxies
    make_secret("a-secrets", STANDARD_DOC)
    web = as_user(engineer)
    assert _revealed_from(web, REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded) == expected


# --------------------------------------------------------------------------------------------
# Bad input never becomes a 500


def test_unknown_host_header_gets_a_400_page(engineer: Any) -> None:
    """Django refuses the host in ``CommonMiddleware``, before the session and user are loaded:
    the 400 page renders for an anonymous visitor (and never as the signed-in one)."""
    client = Client()
    client.force_login(engineer)
    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"The request was malformed" in response.content
    assert b"erin-engineer" not in response.content


# --------------------------------------------------------------------------------------------
# HEAD wherever GET; /healthz for load balancers

GET_ROWS = [r for r in MATRIX if r.method == "GET"]


@pytest.mark.usefixtures("providers")
@pytest.mark.parametrize("entry", GET_ROWS, ids=[r.id for r in GET_ROWS])
def test_head_answers_like_get_on_every_get_url(
    entry: Any, client: Any, admin: Any, request: Any
) -> None:
    """Every GET line of the access matrix, as an admin (who may open them all)."""
    client.defaults["HTTP_HOST"] = HOST
    client.force_login(admin)
    places = request.getfixturevalue("world") if entry.uses_world else {}
    url = reverse(entry.name, args=[a.format(**places) for a in entry.args])
    data = {k: v.format(**places) for k, v in entry.data.items()}
    headers = {"HX-Request": "true"} if entry.htmx else {}
    get = client.get(url, data, headers=headers)
    head = client.head(url, data, headers=headers)
    assert head.status_code == get.status_code == entry.expect["admin"], entry.id
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]


def test_healthz_answers_a_probe_on_the_pod_address_over_plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    probe = Client()
    response = probe.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}
    assert "no-store" in response["Cache-Control"]
    head = probe.head("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert (head.status_code, head.content) == (HTTPStatus.OK, b"")
    # Every other page still redirects to HTTPS and checks the host.
    assert probe.get("/", HTTP_HOST="10.1.2.3:8000").status_code == HTTPStatus.BAD_REQUEST


def test_healthz_does_not_call_aws(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    aws.reset_clients()
    assert Client().get(reverse("healthz")).status_code == HTTPStatus.OK


def test_healthz_is_503_when_the_cache_is_unreachable(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    response = Client().get(reverse("healthz"))
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {"status": "unavailable", "database": "ok", "cache": "unavailable"}


# --------------------------------------------------------------------------------------------
# A state AWS never produces: AWSCURRENT on two versions


def _label_in_moto(name: str, version_id: str, label: str) -> None:
    """Add a staging label in the in-process moto server's store, as no API call can."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[name]
    secret.versions[version_id]["version_stages"].append(label)


def test_a_second_awscurrent_refuses_the_edit_with_a_409_and_writes_nothing(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("a-secrets", STANDARD_DOC)
    first = aws.read_current("a-secrets").version_id
    save_as(engineer, first, Edit("set", "dev", "stripe", "public_key", "pk_portal"))
    # AWS never labels two versions AWSCURRENT (nor does the tests' moto, corrected by
    # secrets_admin/moto_fix.py), so the state is arranged in the fake's own store.
    _label_in_moto("a-secrets", first, "AWSCURRENT")
    stages = aws.describe("a-secrets").versions_to_stages
    assert sum("AWSCURRENT" in labels for labels in stages.values()) == 2
    client = as_user(engineer)
    editor = client.get(reverse("secrets_admin:secret_edit", args=["a-secrets"]))
    base = aws.read_current("a-secrets").version_id
    reviewed = review(client, base, {field_name("set", "dev", "stripe", "public_key"): "pk_new"})

    for response in (editor, reviewed):
        assert response.status_code == HTTPStatus.CONFLICT
        assert "AWSCURRENT on 2 versions" in response.content.decode()
        assert "Nothing was saved" in response.content.decode()
    assert aws.describe("a-secrets").versions_to_stages == stages  # no version, no label moved


# --------------------------------------------------------------------------------------------
# A per-person budget of write steps

#: POST views that are not write steps, with the reason.
NOT_WRITE_STEPS = {
    "secrets_admin:cell_reveal": "its own budget, PORTAL_REVEAL_RATE",
    "secrets_admin:secret_list_refresh": "reads the listing again; coalesced by the listing",
    "secrets_admin:compliance_refresh": "reads again; coalesced by the compliance cache",
    "secrets_admin:audit_export": "reads the audit log",
    "secrets_admin:audit_verify": "reads the audit log",
    "secrets_admin:secret_undelete": "admins only, one small call",
    "secrets_admin:legacy_secret_schedule_deletion": "admins only, one small call",
    "secrets_admin:change_request_approve": "decisions on an existing request: small posts",
    "secrets_admin:change_request_reject": "as above",
    "secrets_admin:change_request_cancel": "as above",
    "secrets_admin:change_request_bypass": "as above",
    "secrets_admin:change_request_acknowledge": "as above",
    "secrets_admin:change_request_apply": "as above",
    "secrets_admin:audit_evidence": "reads the audit log (a download)",
}


def test_every_post_view_is_throttled_or_exempt() -> None:
    assert set(POST_VIEWS) == WRITE_VIEWS | set(NOT_WRITE_STEPS)
    assert not WRITE_VIEWS & set(NOT_WRITE_STEPS)


def test_write_steps_over_the_rate_get_a_429_with_retry_after_per_person(
    settings: Any, client: Any, engineer: Any, approver: Any, make_secret: Any
) -> None:
    # An hour-long window: a minute boundary between two requests of a slow run cannot reset it.
    settings.PORTAL_WRITE_RATE = "2/h"
    make_secret("a-secrets", STANDARD_DOC)
    base = aws.read_current("a-secrets").version_id
    fields = {field_name("set", "dev", "stripe", "public_key"): "pk_new"}
    client.force_login(engineer)
    first, second = (review(client, base, fields) for _ in range(2))
    assert first.status_code == second.status_code == HTTPStatus.OK
    third = review(client, base, fields)
    assert third.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 1 <= int(third["Retry-After"]) <= 3600
    assert "Too many changes: the limit is 2 per hour" in third.content.decode()
    htmx = client.post(
        reverse("secrets_admin:secret_edit_review", args=["a-secrets"]),
        {"base_version_id": base, **fields},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == HTTPStatus.TOO_MANY_REQUESTS and b"<html" not in htmx.content
    # Reading is not a write step; another person has a budget of their own.
    assert (
        client.get(reverse("secrets_admin:secret_edit", args=["a-secrets"])).status_code
        == HTTPStatus.OK
    )
    client.force_login(approver)
    assert review(client, base, fields).status_code == HTTPStatus.OK
    assert aws.read_current("a-secrets").version_id == base
