"""The screen that compares two environments of one secret, by fingerprint only."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import errors, forms, permissions, reads
from ..changes import environment_copy
from ..changes import preview as previews
from ..permissions import Action, require
from . import HtmxHttpRequest
from .errors import error_response
from .saving import review_step, save_step

#: The ``show`` filter of the comparison: every row, or only rows that differ.
DIFFERENCES_ONLY = "differences"


@require_GET
@never_cache
@require(Action.VIEW)
def environment_diff(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Compare environments ``a`` and ``b`` (query string) key by key, by fingerprint only.

    ``show=differences`` hides the rows whose values are the same. With htmx only the
    ``comparison`` fragment comes back. Engineers reveal single cells through ``cell_reveal``.
    """
    a, b = request.GET.get("a", "")[:255], request.GET.get("b", "")[:255]
    only_differences = request.GET.get("show") == DIFFERENCES_ONLY
    try:
        page = reads.environment_diff(name, a, b)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    template = "secrets_admin/environment_diff.html"
    if request.htmx and not request.htmx.boosted:
        template += "#comparison"
    return render(
        request,
        template,
        {
            "compare": page,
            "secret": page.secret,
            "rows": page.table(only_differences=only_differences),
            "only_differences": only_differences,
            "differences_only": DIFFERENCES_ONLY,
            "copy_rows": [
                (row, sides, forms.field_name("row", row.service, row.key))
                for row, sides in page.table(only_differences=only_differences)
            ],
            "services": [
                (service, forms.field_name("copy_service", service))
                for service in dict.fromkeys(row.service for row in page.rows if row.type_a)
            ],
            "b_protected": bool(page.b) and permissions.is_protected(page.b),
            "reveal_seconds": settings.PORTAL_REVEAL_SECONDS,
        },
        status=HTTPStatus.BAD_REQUEST if page.bad_request else HTTPStatus.OK,
    )


#: ``mode`` of an environment copy: copy values, or only the structure (empty strings to fill in).
COPY_VALUES, COPY_STRUCTURE = "values", "structure"


def _copy_input(request: HttpRequest, name: str) -> dict[str, Any]:
    """The posted copy: ``a`` (source), ``b`` (target), ``base_version_id``, ``mode``, rows
    (``row:["service","key"]``) and whole services (``copy_service:["service"]``), with the
    compare page to go back to. The browser sends names only; values are read on the server."""
    source, target = request.POST.get("a", "")[:255], request.POST.get("b", "")[:255]
    with_values = request.POST.get("mode", COPY_VALUES) != COPY_STRUCTURE
    back = (
        reverse("secrets_admin:environment_diff", args=[name])
        + "?"
        + urlencode({"a": source, "b": target})
    )
    try:
        rows = forms.copy_rows(request.POST)
    except forms.FormProblem as exc:
        raise errors.InvalidInput(exc.message) from None
    return {
        "copy": environment_copy.CopyChoice(source, target, tuple(rows), with_values),
        "base_version_id": request.POST.get("base_version_id", "")[:64],
        "back": back,
        "fields": [
            ("a", source),
            ("b", target),
            ("mode", COPY_VALUES if with_values else COPY_STRUCTURE),
            *forms.copy_fields(rows),
        ],
    }


@require_POST
@never_cache
@require(Action.EDIT)
def environment_copy_review(request: HttpRequest, name: str) -> HttpResponse:
    """The review of copying the chosen rows or whole services from environment ``a`` to ``b``
    of version ``base_version_id``."""
    try:
        c = _copy_input(request, name)
    except errors.InvalidInput as exc:
        messages.error(request, exc.message)
        return redirect(reverse("secrets_admin:environment_diff", args=[name]))
    copy = c["copy"]
    source, target = copy.source, copy.target

    def protected() -> list[str]:
        if not permissions.is_protected(target):
            return []
        return [
            f"{target} is a protected environment: copying into {target} needs approval by a "
            "second person (a change request) and is not saved directly."
        ]

    what = "values" if copy.with_values else "structure (empty values)"
    return review_step(
        request,
        name=name,
        review=lambda: previews.secret_preview_environment_copy(
            name=name, base_version_id=c["base_version_id"], copy=copy
        ),
        back=c["back"],
        back_label="Back to the comparison",
        no_changes=f"No changes: {target} already has what you chose from {source}.",
        save_action=reverse("secrets_admin:environment_copy_save", args=[name]),
        fields=c["fields"],
        title=f"Copy {what} from {source} to {target} in {name}",
        warnings=protected,
    )


@require_POST
@never_cache
@require(Action.EDIT)
def environment_copy_save(request: HttpRequest, name: str) -> HttpResponse:
    """Save the reviewed copy as one changeset (a change request for a protected target)."""
    try:
        c = _copy_input(request, name)
    except errors.InvalidInput as exc:
        messages.error(request, exc.message)
        return redirect(reverse("secrets_admin:environment_diff", args=[name]))
    return save_step(
        request,
        name=name,
        run=lambda context, change_id: environment_copy.environment_copy(
            name=name,
            base_version_id=c["base_version_id"],
            source=c["copy"].source,
            target=c["copy"].target,
            rows=c["copy"].rows,
            with_values=c["copy"].with_values,
            context=context,
            change_id=change_id,
            comment=request.POST.get("comment", "")[:2000],
        ),
        back=c["back"],
        reapply_action=reverse("secrets_admin:environment_copy_review", args=[name]),
        reapply_fields=c["fields"],
    )
