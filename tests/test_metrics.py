"""The Prometheus endpoint: off without a token, bearer token only, and the portal's counters -
never a secret's name or value."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from secrets_admin import aws, listing

from .conftest import STANDARD_DOC
from .portal_flows import save_cells

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-8c1f"
NAME = "shop-secrets"
CANARY = "CANARY-metrics-77aa"


@pytest.fixture
def token(settings: Any) -> str:
    settings.PORTAL_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Any) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    response = client.get(reverse("portal_metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_configured_token(client: Any, settings: Any) -> None:
    settings.PORTAL_METRICS_TOKEN = ""
    response = client.get(reverse("portal_metrics"), headers={"Authorization": "Bearer x"})
    assert response.status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_metrics_need_the_bearer_token(
    token: str, client: Any, admin: Any, authorization: str | None
) -> None:
    client.force_login(admin)  # a person's session is not enough
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(reverse("portal_metrics"), headers=headers)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"portal_" not in response.content


def test_scrape_counts_requests_aws_calls_rate_limits_listing_age_and_waiting_requests(
    token: str, client: Any, as_user: Any, engineer: Any, make_secret: Any, settings: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    _, before = scrape(client)
    reader = as_user(engineer)

    reader.get(reverse("secrets_admin:secret_detail", args=[NAME]))
    reader.get(reverse("secrets_admin:secret_detail", args=["gone-secrets"]))
    settings.PORTAL_REVEAL_RATE = "1/m"
    cell = {
        "version_id": aws.read_current(NAME).version_id,
        "environment": "dev",
        "service": "stripe",
        "key": "secret_key",
    }
    reveals = [reader.post(reverse("secrets_admin:cell_reveal", args=[NAME]), cell) for _ in "ab"]
    assert [r.status_code for r in reveals] == [HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]
    save_cells(reader, NAME, {("main", "stripe", "secret_key"): CANARY}, comment="rotate")
    listing.listing_state()
    text, after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    detail = "secrets_admin:secret_detail"
    assert grew("portal_requests_total", route=detail, status="200") == 1
    assert grew("portal_requests_total", route=detail, status="404") == 1
    assert grew("portal_request_duration_seconds_count", route=detail) == 2
    assert grew("portal_reveal_rate_limited_total") == 1
    ok = {"service": "secrets-manager", "error_code": ""}
    assert grew("portal_aws_calls_total", operation="GetSecretValue", **ok) >= 2
    assert grew("portal_aws_calls_total", operation="ListSecrets", **ok) >= 1
    missing = {"service": "secrets-manager", "error_code": "ResourceNotFoundException"}
    assert (
        sum(
            grew("portal_aws_calls_total", operation=op, **missing)
            for op in ("DescribeSecret", "GetSecretValue")
        )
        >= 1
    )
    assert sample(after, "portal_change_requests_waiting", status="open") == 1
    assert sample(after, "portal_change_requests_waiting", status="approved") == 0
    assert 0 <= sample(after, "portal_listing_age_seconds") < 60
    assert CANARY not in text and NAME not in text and "sk_test" not in text


WORKER = """
import django, sys
django.setup()
from django.http import HttpResponse
from django.test import RequestFactory
from django.conf import settings
from secrets_admin.observability.logs import RequestLogMiddleware
from secrets_admin.observability.metrics import metrics_view
if sys.argv[1] == "serve":
    RequestLogMiddleware(lambda request: HttpResponse())(RequestFactory().get("/x"))
else:
    settings.PORTAL_METRICS_TOKEN = "t"
    request = RequestFactory().get("/metrics", headers={"Authorization": "Bearer t"})
    sys.stdout.write(metrics_view(request).content.decode())
"""


def test_multiprocess_mode_sums_every_workers_counters(tmp_path: Any) -> None:
    """Two gunicorn-like worker processes each serve a request; a scrape of a third sees both."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    run("serve")
    run("serve")
    text = run("scrape")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert sample(samples, "portal_requests_total", route="unmatched", status="200") == 2
