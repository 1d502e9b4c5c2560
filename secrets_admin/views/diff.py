"""The screen that compares two environments of one secret, by fingerprint only."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import aws, reads
from ..permissions import Action, require
from . import HtmxHttpRequest
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
            "reveal_seconds": settings.PORTAL_REVEAL_SECONDS,
        },
        status=HTTPStatus.BAD_REQUEST if page.bad_request else HTTPStatus.OK,
    )
