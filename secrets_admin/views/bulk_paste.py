"""Bulk paste into one environment (engineers), one URL per step: ``secret_bulk_paste`` (GET:
the form; POST: the form again with the posted text, "back") and ``secret_bulk_paste_preview``
(POST: the per-cell preview, audited as a comparison). Its confirm form posts the edits to the
editor's own review (``secret_edit_review``), so review and save are the editor's.

The pasted text lives only in the posted forms (the person's own input; responses are
``no-store``), never in the session, the cache or the database.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from .. import audit, errors, forms, reads
from ..changes import bulk_paste
from ..permissions import Action, require
from .errors import error_response

TEMPLATE = "secrets_admin/secret_bulk_paste.html"


def _posted(request: HttpRequest) -> dict[str, str]:
    return {
        "base_version_id": request.POST.get("base_version_id", "")[:64],
        "environment": request.POST.get("environment", "")[:255],
        "service": request.POST.get("service", "").strip()[:255],
        "text": request.POST.get("text", "").replace("\r\n", "\n"),
    }


def _page(
    request: HttpRequest, name: str, step: str, *, status: int = HTTPStatus.OK, **context: Any
) -> HttpResponse:
    """The paste page at ``step`` (``paste`` or ``preview``) with its ``context``."""
    return render(request, TEMPLATE, {"step": step, "name": name, **context}, status=status)


def _form(
    request: HttpRequest,
    name: str,
    posted: dict[str, str] | None = None,
    *,
    error: str = "",
    status: int = HTTPStatus.OK,
) -> HttpResponse:
    try:
        state = reads.secret_edit_state(name=name)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    posted = posted or {"environment": request.GET.get("environment", "")}
    return _page(request, name, "paste", state=state, posted=posted, error=error, status=status)


@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_bulk_paste(request: HttpRequest, name: str) -> HttpResponse:
    """The paste form (GET), or again with the posted text (POST, "back")."""
    return _form(request, name, _posted(request) if request.method == "POST" else None)


@require_POST
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_bulk_paste_preview(request: HttpRequest, name: str) -> HttpResponse:
    """Per-cell preview of the posted paste, with a form to the editor's review."""
    posted = _posted(request)
    try:
        preview = bulk_paste.secret_bulk_paste_preview(
            name=name, context=audit.Context.from_request(request), **posted
        )
    except errors.ChangeRefused as exc:
        return _form(request, name, posted, error=exc.message, status=exc.status)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    return _page(
        request,
        name,
        "preview",
        preview=preview,
        posted=posted,
        fields=forms.intent_fields(preview.intent),
        review_action=reverse("secrets_admin:secret_edit_review", args=[name]),
        writes=len(preview.intent.values),
    )
