"""Production settings pass ``check --deploy``; every page sends the security headers, a strict
Content-Security-Policy and ``Cache-Control: no-store`` (ASVS 5.0 V3.4, 14.3.2)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws

from .conftest import STANDARD_DOC
from .urltable import SAMPLE_SECRET, all_urls

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a production process: no demo, no test mode, real keys and hosts."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PORTAL_DEMO",
            "PORTAL_TESTING",
            "DEBUG",
            "CACHE_URL",
            "DATABASE_URL",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        )
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        PORTAL_FINGERPRINT_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="secrets.example.com",
        CSRF_TRUSTED_ORIGINS="https://secrets.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        DJANGO_SETTINGS_MODULE="portal.settings",
        # Audit devices (README "Audit you can prove"): a signing key, no devices.
        PORTAL_AUDIT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        PORTAL_AUDIT_DEVICES="none",
    )
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_strict_csp(header: str) -> None:
    """No inline or eval'd script or style, no plugins, no <base>, no framing, own origin only."""
    policy = csp_directives(header)
    assert policy["default-src"] == ["'self'"]
    for directive in ("script-src", "style-src"):
        assert policy[directive] == ["'self'"], f"{directive}: {policy[directive]}"
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header
    assert "*" not in header and "http:" not in header


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = run_python(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        production_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["PORTAL_FINGERPRINT_KEY"]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "Set PORTAL_FINGERPRINT_KEY" in result.stderr


_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="secrets.example.com")
out = {}
for label, secure in (("https", True), ("http", False)):
    r = client.get("/", secure=secure)
    out[label] = {"status": r.status_code, "headers": dict(r.headers)}
print(json.dumps(out))
"""


def test_production_sends_hsts_redirects_to_https_and_sets_security_headers(
    tmp_path: Path,
) -> None:
    result = run_python(_PROBE, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    plain = answers["http"]
    assert plain["status"] == HTTPStatus.MOVED_PERMANENTLY
    assert plain["headers"]["Location"].startswith("https://secrets.example.com/")
    headers = answers["https"]["headers"]
    assert answers["https"]["status"] == HTTPStatus.FOUND  # to sign-in
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "no-store" in headers["Cache-Control"]
    assert_strict_csp(headers["Content-Security-Policy"])


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["anonymous", "engineer", "auditor", "outsider"])
def test_every_page_sends_strict_csp_no_store_and_security_headers(
    request: Any, client: Any, make_secret: Any, persona: str
) -> None:
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    seen = []
    for url in all_urls():
        response = client.get(url.path)
        seen.append((str(url), response.status_code))
        assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, (url, response.status_code)
        assert "no-store" in response["Cache-Control"], url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "same-origin", url
        assert response["X-Frame-Options"] == "DENY", url
        assert_strict_csp(response["Content-Security-Policy"])
    assert ("secrets_admin:secret_detail", HTTPStatus.OK) in seen or persona != "engineer"


@pytest.mark.django_db
def test_reveal_and_error_responses_are_not_stored(
    client: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client.force_login(engineer)
    version = aws.read_current(SAMPLE_SECRET).version_id
    url = reverse("secrets_admin:cell_reveal", args=[SAMPLE_SECRET])
    fields = {"version_id": version, "environment": "dev", "service": "stripe", "key": "secret_key"}
    for data, status in ((fields, HTTPStatus.OK), ({}, HTTPStatus.BAD_REQUEST)):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, data, headers=headers)
            assert response.status_code == status
            assert "no-store" in response["Cache-Control"]
            assert_strict_csp(response["Content-Security-Policy"])
    missing = client.get("/no-such-page/")
    assert missing.status_code == HTTPStatus.NOT_FOUND
    assert "no-store" in missing["Cache-Control"]


def test_static_files_stay_cacheable(client: Any) -> None:
    """no-store is for pages: the middleware sits below whitenoise, so assets keep caching."""
    response = client.get("/static/portal/portal.js")
    assert response.status_code == HTTPStatus.OK
    assert "no-store" not in response.get("Cache-Control", "")


def test_pages_use_no_inline_script_or_style(client: Any) -> None:
    """The templates keep to the CSP: no <script> without src, no style attribute, no hx-on."""
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert "<style" not in text, template
        assert " style=" not in text, template
        assert "hx-on" not in text and "javascript:" not in text, template
        for tag in text.split("<script")[1:]:
            assert "src=" in tag.split(">")[0], template
