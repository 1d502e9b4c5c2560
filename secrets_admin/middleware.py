"""Request id, session idle timeout (ASVS 5.0 7.3.1) and ``Cache-Control: no-store`` (14.3.2)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

IDLE_KEY = "portal_last_seen"


class PortalMiddleware:
    """Give every request an id (``request.request_id``, echoed as ``X-Request-ID``) and end a
    session idle longer than ``PORTAL_SESSION_IDLE_TIMEOUT`` seconds."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            now = int(time.time())
            last = request.session.get(IDLE_KEY)
            if isinstance(last, int) and now - last > settings.PORTAL_SESSION_IDLE_TIMEOUT:
                logout(request)
            else:
                request.session[IDLE_KEY] = now
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


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
