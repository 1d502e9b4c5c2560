"""A per-person budget of write steps (ASVS 5.0 2.4.1 anti-automation; 13.1 resource limits).

A write step (review, save, propose, restore, copy between environments, create, migrate) may
parse a post of up to ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields and call AWS several times, so a
few people posting in a loop could hold every worker. ``PORTAL_WRITE_RATE`` (default 30 a
minute) bounds the steps one person starts; more get a 429 with ``Retry-After`` and nothing runs.
Counted like reveals (:mod:`secrets_admin.ratelimit`, its own ``"write"`` budget) in the shared
cache. Applied by URL name from the middleware list, so the views themselves are untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import ratelimit

#: URL names whose POSTs are write steps. A new write view is added here (the test
#: ``test_every_post_view_is_throttled_or_exempt`` fails naming it until it is classified).
WRITE_VIEWS = frozenset(
    {
        "secrets_admin:secret_edit",  # the editor form (its POST re-renders the grid editor)
        "secrets_admin:secret_edit_review",  # review an edit: compares typed values
        "secrets_admin:secret_edit_save",  # save, or propose for a protected environment
        "secrets_admin:secret_restore_review",  # restore one environment from a version
        "secrets_admin:secret_restore_save",
        "secrets_admin:environment_copy_review",  # copy rows between environments
        "secrets_admin:environment_copy_save",
        "secrets_admin:secret_create",
        "secrets_admin:secret_migrate",  # choose, preview and migrate a legacy secret
        "secrets_admin:secret_migrate_preview",
        "secrets_admin:secret_migrate_apply",
        # editing: bulk paste (its form re-rendered with the text, and its preview) and the
        # first version of a secret without a value
        "secrets_admin:secret_bulk_paste",
        "secrets_admin:secret_bulk_paste_preview",
        "secrets_admin:secret_first_version",
    }
)


class WriteThrottleMiddleware:
    """Refuse a write step over ``PORTAL_WRITE_RATE`` for its person with a 429.

    Works in ``process_view``: after the CSRF check (a forged post costs the victim nothing) and
    once the URL is resolved; anonymous requests pass on to the view's sign-in redirect.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in WRITE_VIEWS:
            return None
        if not request.user.is_authenticated:
            return None
        limited = ratelimit.consume("write", str(request.user.pk), ratelimit.write_rate())
        if limited is None:
            return None
        limited = dataclasses.replace(limited, events="changes")
        template = "429.html" + ("#error-message" if getattr(request, "htmx", False) else "")
        response = render(
            request, template, {"message": limited.message}, status=HTTPStatus.TOO_MANY_REQUESTS
        )
        response["Retry-After"] = str(limited.retry_after)
        return response
