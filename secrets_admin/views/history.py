"""Screens for a secret's version history and the per-cell diff between two versions."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import errors, history, reads
from ..permissions import Action, require
from .errors import error_response


@require_GET
@never_cache
@require(Action.VIEW)
def secret_history(request: HttpRequest, name: str) -> HttpResponse:
    """Every version (deprecated included): labels, date, author and summary from the audit log,
    a flag for versions written outside the portal, diff links and "restore environment"."""
    try:
        page = reads.secret_open(name)
        versions = history.secret_history_page(name, request.GET.get("page"))
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    return render(
        request,
        "secrets_admin/secret_history.html",
        {
            "name": name,
            "secret": page,
            "rows": versions.rows,
            "page": versions.page,
            "restorable": [(env, page.protected.get(env, False)) for env in page.environments],
            "blocker": reads.edit_blocker(page),
        },
    )


@require_GET
@never_cache
@require(Action.VIEW)
def secret_version_diff(request: HttpRequest, name: str) -> HttpResponse:
    """Cells added / removed / changed / type changed from version ``a`` to version ``b`` (GET),
    by fingerprint; permitted roles reveal either side through ``cell_reveal``."""
    before, after = request.GET.get("a", "")[:64], request.GET.get("b", "")[:64]
    context: dict[str, object] = {"name": name, "a": before, "b": after}
    try:
        context["versions"] = history.secret_history(name)
        if before and after:
            context["diff"] = history.secret_version_diff(name, before, after)
    except errors.NotEditable as exc:  # the diff page says why, with the versions to choose
        context["error"] = exc.message
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    return render(request, "secrets_admin/secret_version_diff.html", context)
