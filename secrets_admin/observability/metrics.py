"""Prometheus metrics at ``/metrics`` (prometheus-client), for a bearer token only.

The endpoint exists only when ``PORTAL_METRICS_TOKEN`` is set (otherwise 404) and answers only
a request with ``Authorization: Bearer <PORTAL_METRICS_TOKEN>`` (otherwise 401): the scraper
holds the token, no person's session opens it. The metrics are counts, durations and names of
routes and AWS operations, never a secret's name or value:

* ``portal_requests_total{route,status}`` and ``portal_request_duration_seconds{route}``:
  route is the URL pattern's name (``secrets_admin:secret_detail``), never the path;
* ``portal_aws_calls_total{service,operation,error_code}``: every call the gateway makes
  (botocore's event hook, :func:`.logs.count_aws_calls`); ``error_code`` is empty on success;
* ``portal_reveal_rate_limited_total``: reveals refused by the per-user rate limit (429);
* ``portal_listing_age_seconds``: how old the cached listing of secrets is (absent before the
  first listing); ``portal_change_requests_waiting{status}``: change requests open or approved
  and not yet applied. Both are read from the cache and the database at scrape time.

Several gunicorn workers: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory per
instance, as the Dockerfile and ``deploy/k8s`` do), every worker writes its counters there and a
scrape of any worker sums them (prometheus-client's multiprocess mode; ``deploy/gunicorn.conf.py``
clears the directory at start and marks exited workers). Without it, each worker counts alone
and a scrape sees one worker's share.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import logs

#: The reveal view's URL name (``route`` label) and the status its rate limit answers.
REVEAL_ROUTE = "secrets_admin:cell_reveal"
RATE_LIMITED = 429

REQUESTS = Counter("portal_requests", "Requests served, by route and status.", ["route", "status"])
DURATION = Histogram(
    "portal_request_duration_seconds",
    "Time to answer a request, by route.",
    ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
AWS_CALLS = Counter(
    "portal_aws_calls",
    "AWS API calls made, by service, operation and error code (empty: succeeded).",
    ["service", "operation", "error_code"],
)
REVEAL_RATE_LIMITED = Counter(
    "portal_reveal_rate_limited", "Reveals refused by the per-user reveal rate limit."
)


def _request_done(route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route=route, status=str(status)).inc()
    DURATION.labels(route=route).observe(seconds)
    if route == REVEAL_ROUTE and status == RATE_LIMITED:
        REVEAL_RATE_LIMITED.inc()


def _aws_call_done(service: str, operation: str, error_code: str) -> None:
    AWS_CALLS.labels(service=service, operation=operation, error_code=error_code).inc()


logs.request_listeners.append(_request_done)
logs.aws_call_listeners.append(_aws_call_done)


class PortalStateCollector(Collector):
    """Gauges read at scrape time: the listing's age and the change requests waiting."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .. import listing
        from ..models import ChangeRequest

        age = GaugeMetricFamily(
            "portal_listing_age_seconds", "Seconds since the cached listing of secrets was fetched."
        )
        stamp = cache.get(listing.STAMP_KEY)
        fetched_at = getattr(stamp, "fetched_at", None)
        if isinstance(fetched_at, float | int):
            age.add_metric([], max(0.0, time.time() - fetched_at))
        yield age

        waiting = GaugeMetricFamily(
            "portal_change_requests_waiting",
            "Change requests waiting: open (for approvals) or approved (being applied).",
            labels=["status"],
        )
        statuses = (ChangeRequest.Status.OPEN, ChangeRequest.Status.APPROVED)
        try:
            counts = [ChangeRequest.objects.filter(status=s).count() for s in statuses]
        except DatabaseError:
            # The database is down: the counters above still reach Prometheus; this gauge is
            # absent from this scrape (alert on absent(portal_change_requests_waiting)).
            return
        for status, count in zip(statuses, counts, strict=True):
            waiting.add_metric([status.value], count)
        yield waiting


def _registry() -> CollectorRegistry:
    """Every worker's counters (multiprocess mode) or this process's, plus the scrape-time
    gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Default())
    registry.register(PortalStateCollector())
    return registry


class _Default(Collector):
    """This process's own metrics (the default registry) inside a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition. 404 when ``PORTAL_METRICS_TOKEN`` is unset; 401 without
    ``Authorization: Bearer <token>`` (compared in constant time)."""
    token = settings.PORTAL_METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        response = HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
