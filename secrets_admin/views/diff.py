"""The screen that compares two environments of one secret, by fingerprint only."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import aws, errors, forms, permissions, reads
from ..changes import environment_copy
from ..changes import preview as previews
from ..permissions import Action, require
from . import HtmxHttpRequest
from .editor import _review_page, _run_save
from .secrets import _aws_error_page, _check_name

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
    _check_name(name)
    a, b = request.GET.get("a", "")[:255], request.GET.get("b", "")[:255]
    only_differences = request.GET.get("show") == DIFFERENCES_ONLY
    try:
        page = reads.environment_compare(name, a, b)
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
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
            "promote_rows": [
                (row, sides, forms.field_name("row", row.service, row.key))
                for row, sides in page.table(only_differences=only_differences)
            ],
            "services": [
                (service, forms.field_name("promote_service", service))
                for service in dict.fromkeys(row.service for row in page.rows if row.type_a)
            ],
            "b_protected": bool(page.b) and permissions.is_protected(page.b),
            "reveal_seconds": settings.PORTAL_REVEAL_SECONDS,
        },
        status=HTTPStatus.BAD_REQUEST if page.bad_request else HTTPStatus.OK,
    )


#: ``mode`` of a promotion: copy values, or only the structure (empty strings to fill in).
PROMOTE_VALUES, PROMOTE_STRUCTURE = "values", "structure"


@require_POST
@never_cache
@require(Action.EDIT)
def environment_promote(request: HttpRequest, name: str) -> HttpResponse:
    """Copy the chosen rows (``row:["service","key"]``) or whole services
    (``promote_service:["service"]``) from environment ``a`` to ``b`` of version
    ``base_version_id``: ``step=review`` shows the changeset, ``step=save`` saves it.

    The browser sends names only; the values are read on the server from that version.
    """
    _check_name(name)
    source, target = request.POST.get("a", "")[:255], request.POST.get("b", "")[:255]
    base_version_id = request.POST.get("base_version_id", "")[:64]
    with_values = request.POST.get("mode", PROMOTE_VALUES) != PROMOTE_STRUCTURE
    back = (
        reverse("secrets_admin:environment_diff", args=[name])
        + "?"
        + urlencode({"a": source, "b": target})
    )
    try:
        rows = forms.promote_rows(request.POST)
    except forms.FormProblem as exc:
        messages.error(request, exc.message)
        return redirect(back)
    fields = [
        ("a", source),
        ("b", target),
        ("mode", PROMOTE_VALUES if with_values else PROMOTE_STRUCTURE),
        *forms.promote_fields(rows),
    ]
    if request.POST.get("step") == "save":

        def again(message: str, status: int) -> HttpResponse:
            messages.error(request, message)
            return redirect(back)

        return _run_save(
            request,
            name,
            lambda context, change_id: environment_copy.environment_copy(
                name=name,
                base_version_id=base_version_id,
                source=source,
                target=target,
                rows=rows,
                with_values=with_values,
                context=context,
                change_id=change_id,
            ),
            again=again,
            reapply_action=reverse("secrets_admin:environment_promote", args=[name]),
            reapply_fields=fields,
            done=back,
        )
    try:
        state, preview = previews.secret_preview_environment_copy(
            name=name,
            base_version_id=base_version_id,
            source=source,
            target=target,
            rows=rows,
            with_values=with_values,
        )
    except errors.ChangeRefused as exc:
        messages.error(request, exc.message)
        return redirect(back)
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
    if not preview.cells and not preview.structure:
        messages.info(request, f"No changes: {target} already has what you chose from {source}.")
        return redirect(back)
    if permissions.is_protected(target):
        state.warnings.append(
            f"{target} is a protected environment: promotion into {target} needs approval by a "
            "second person (a change request) and is not saved directly."
        )
    what = "values" if with_values else "structure (empty values)"
    return _review_page(
        request,
        name=name,
        preview=preview,
        state=state,
        action=reverse("secrets_admin:environment_promote", args=[name]),
        fields=fields,
        title=f"Promote {what} from {source} to {target} in {name}",
        back_fields=False,
        back_url=back,
    )
