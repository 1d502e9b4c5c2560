"""``/healthz`` for load balancers and orchestrators: the database and the cache answer.

No sign-in and no AWS call: a probe must not depend on an identity provider, and an AWS outage
must not take every instance out of the load balancer (pages explain AWS errors themselves).

Load balancers probe the pod or instance address, so the ``Host`` header is an IP that is not in
``ALLOWED_HOSTS``, and over plain HTTP. :class:`HealthCheckMiddleware` therefore answers
``GET``/``HEAD /healthz`` before Django's host check (``CommonMiddleware``); ``SecurityMiddleware``
above it skips the HTTPS redirect for this path (``SECURE_REDIRECT_EXEMPT``). The answer builds
no URL from the host and holds no data, so an unchecked host cannot poison it. Other methods
fall through to the normal stack (a ``POST`` meets the CSRF check like any other URL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from csp.utils import build_policy
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.cache import add_never_cache_headers

logger = logging.getLogger(__name__)

_PROBE_KEY = "portal:healthz"
#: The probe's path (also routed as URL name ``healthz`` in ``portal/urls.py``).
PATH = "/healthz"


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception as exc:  # any failure means "not healthy"; its class is logged
        logger.warning("health check: database unreachable (%s)", type(exc).__name__)
        return False


def _cache_ok() -> bool:
    try:
        cache.set(_PROBE_KEY, "ok", timeout=10)
        return bool(cache.get(_PROBE_KEY) == "ok")
    except Exception as exc:  # as above
        logger.warning("health check: cache unreachable (%s)", type(exc).__name__)
        return False


def healthz(request: HttpRequest) -> HttpResponse:
    """``GET``/``HEAD``: 200 ``{"status": "ok", "database": "ok", "cache": "ok"}``, or 503 with
    ``"unavailable"`` naming the part that failed. Never cached, framed or scripted."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    parts = {"database": _database_ok(), "cache": _cache_ok()}
    healthy = all(parts.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        **{name: "ok" if ok else "unavailable" for name, ok in parts.items()},
    }
    status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
    response: HttpResponse = JsonResponse(body, status=status)
    if request.method == "HEAD":
        response["Content-Length"] = str(len(response.content))
        response.content = b""
    # The middlewares that add these sit below HealthCheckMiddleware; same headers as any page.
    add_never_cache_headers(response)
    response["X-Frame-Options"] = "DENY"
    response["Content-Security-Policy"] = build_policy()
    return response


class HealthCheckMiddleware:
    """Answer ``GET``/``HEAD /healthz`` with :func:`healthz` before the host check (see the
    module docstring); placed right after ``SecurityMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
