"""Request id, session lifetime (ASVS 5.0 7.3.1, 7.3.2), an unreachable identity provider or a
replayed SAML response, and ``Cache-Control: no-store`` (14.3.2)."""

from __future__ import annotations

import time
import urllib.error
import uuid
from collections.abc import Callable
from http import HTTPStatus

import requests
from django.conf import settings
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.cache import add_never_cache_headers

from .adapters import AUTH_ERROR_MESSAGES, record_login_failed, sso_error_response

IDLE_KEY = "portal_last_seen"
#: How often the idle clock is moved forward (seconds): a session is ended after
#: ``PORTAL_SESSION_IDLE_TIMEOUT`` minus at most this much of inactivity.
IDLE_STAMP_SECONDS = 60
#: When the session's user signed in (epoch seconds); set by ``signals.stamp_sign_in``.
SIGNED_IN_KEY = "portal_signed_in_at"
#: Why ``logout`` was called, read by the audit receiver (``signals.audit_sign_out``).
LOGOUT_REASON_ATTR = "portal_logout_reason"


class PortalMiddleware:
    """Give every request an id (``request.request_id``, echoed as ``X-Request-ID``) and end a
    session idle longer than ``PORTAL_SESSION_IDLE_TIMEOUT`` seconds or older than
    ``SESSION_COOKIE_AGE`` (``PORTAL_SESSION_MAX_AGE``) seconds since sign-in.

    Django's own ``SESSION_COOKIE_AGE`` slides forward each time the session is saved (and this
    middleware saves it on every request), so the absolute limit is enforced here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            last = session.get(IDLE_KEY)
            signed_in = session.setdefault(SIGNED_IN_KEY, now)
            if isinstance(last, int) and now - last > settings.PORTAL_SESSION_IDLE_TIMEOUT:
                setattr(request, LOGOUT_REASON_ATTR, "idle_timeout")
                logout(request)
            elif isinstance(signed_in, int) and now - signed_in > settings.SESSION_COOKIE_AGE:
                setattr(request, LOGOUT_REASON_ATTR, "max_age")
                logout(request)
            elif not isinstance(last, int) or now - last >= IDLE_STAMP_SECONDS:
                # Not on every request: each stamp is a session write (a Redis round trip).
                session[IDLE_KEY] = now
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """An identity provider that cannot be reached (discovery, metadata or token endpoint
        down, DNS, TLS) during a sign-in: a clear 502 page and a ``login.failed`` event instead
        of a 500. Only for allauth's views; anything else propagates."""
        match = request.resolver_match
        if match is None or not match.func.__module__.startswith("allauth."):
            return None
        provider = str(
            match.kwargs.get("provider_id") or match.kwargs.get("organization_slug") or ""
        )
        if match.url_name == "saml_finish_acs" and isinstance(exception, PermissionDenied):
            # deploy: a SAML response whose InResponseTo names no sign-in pending in this
            # session (a replayed or foreign assertion): allauth refuses it with PermissionDenied,
            # which would otherwise show the role page ("Not allowed").
            record_login_failed(request, provider=provider, code="state_mismatch")
            return sso_error_response(
                request, AUTH_ERROR_MESSAGES["state_mismatch"], status=HTTPStatus.UNAUTHORIZED
            )
        if not isinstance(exception, requests.RequestException | urllib.error.URLError):
            return None
        record_login_failed(request, provider=provider, code="idp_unreachable")
        return sso_error_response(
            request, AUTH_ERROR_MESSAGES["idp_unreachable"], status=HTTPStatus.BAD_GATEWAY
        )


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (with ``private, no-cache, must-revalidate, max-age=0``) on
    every response a view makes (ASVS 5.0 14.3.2).

    Every page of the portal shows secret metadata and some show a value, so no browser or proxy
    may keep a copy; a page that shows neither loses nothing by it. Static files never get here:
    whitenoise answers them further up the middleware list, with their own long-lived caching.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response


class HeadAsGetMiddleware:
    """Answer ``HEAD`` wherever ``GET`` is answered (RFC 9110 9.3.2: same status and headers, no
    body): the view runs as for a ``GET``, then the body is dropped and its length kept.

    Load balancers and uptime checks probe with ``HEAD``; the views accept ``GET`` only
    (``require_GET``), which would refuse it with 405. Placed last, so only the view sees a GET.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "HEAD":
            return self.get_response(request)
        request.method = "GET"
        try:
            response = self.get_response(request)
        finally:
            request.method = "HEAD"
        if isinstance(response, StreamingHttpResponse):
            response.streaming_content = []
        else:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response
