"""Credential hygiene screens: service matrix (and its CSV), reused credentials, stale
credentials, adoption of the standard. Read from the index only: no AWS call, never a value."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import compliance, hygiene
from ..hygiene import adoption, matrix, reuse, staleness
from ..permissions import Action, require, visible_secret_names

#: Repositories per page of the service matrix (the CSV export has them all).
MATRIX_PAGE_SIZE = 50


def _index_state(visible: hygiene.Visible) -> dict[str, Any]:
    return {"index": hygiene.index_state(visible=visible)}


def _matrix_filters(request: HttpRequest) -> dict[str, str]:
    presence = request.GET.get("presence", "")
    return {
        "environment": request.GET.get("environment", "")[:255],
        "service": request.GET.get("service", "")[:255],
        "presence": presence if presence in matrix.PRESENCE else "",
    }


@require_GET
@never_cache
@require(Action.VIEW)
def service_matrix(request: HttpRequest) -> HttpResponse:
    """Repositories x services, filterable by environment, service and presence; each cell links
    to the repository's grid. ``MATRIX_PAGE_SIZE`` repositories per page."""
    visible = visible_secret_names(request.user)
    filters = _matrix_filters(request)
    table = matrix.service_matrix(visible=visible, **filters)
    page = Paginator(table.rows, MATRIX_PAGE_SIZE).get_page(request.GET.get("page", ""))
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "secrets_admin/service_matrix.html",
        {
            "matrix": table,
            "page": page,
            "filters": filters,
            "query": query,
            **_index_state(visible),
        },
    )


@require_GET
@never_cache
@require(Action.VIEW)
def service_matrix_export(request: HttpRequest) -> HttpResponse:
    """The (filtered) service matrix as CSV: names and environments only."""
    visible = visible_secret_names(request.user)
    table = matrix.service_matrix(visible=visible, **_matrix_filters(request))
    response = HttpResponse(matrix.matrix_csv(table), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="service-matrix.csv"'
    return response


@require_GET
@never_cache
@require(Action.VIEW)
def credential_reuse(request: HttpRequest) -> HttpResponse:
    """Credentials held in more than one environment or repository (fingerprints, no values)."""
    visible = visible_secret_names(request.user)
    groups = reuse.reuse_groups(visible=visible)
    severity = request.GET.get("severity", "")
    shown = [g for g in groups if not severity or g.severity == severity]
    return render(
        request,
        "secrets_admin/credential_reuse.html",
        {
            "groups": shown[:500],
            "total": len(shown),
            "errors": sum(1 for g in groups if g.severity == "error"),
            "warnings": sum(1 for g in groups if g.severity == "warning"),
            "all": len(groups),
            "severity": severity if severity in ("error", "warning") else "",
            "rules": {r: t for r, t in compliance.RULES.items() if r.startswith("reuse.")},
            **_index_state(visible),
        },
    )


@require_GET
@never_cache
@require(Action.VIEW)
def credential_staleness(request: HttpRequest) -> HttpResponse:
    """Credentials due for rotation (oldest first), rotation schedules, leftover AWSPENDING."""
    visible = visible_secret_names(request.user)
    environment = request.GET.get("environment", "")[:255]
    report = staleness.staleness(visible=visible, environment=environment)
    return render(
        request,
        "secrets_admin/credential_staleness.html",
        {
            "report": report,
            "environment": environment,
            "setting": settings.PORTAL_STALE_DAYS,
            **_index_state(visible),
        },
    )


@require_GET
@never_cache
@require(Action.VIEW)
def standard_adoption(request: HttpRequest) -> HttpResponse:
    """Per repository, what the portal can verify of the standard's migration checklist;
    sortable by any column (``sort``, ``-`` for descending)."""
    visible = visible_secret_names(request.user)
    sort = request.GET.get("sort", "repo")
    if sort.lstrip("-") not in adoption.ADOPTION_SORTS:
        sort = "repo"
    rows = adoption.sort_adoption(adoption.adoption(visible=visible), sort)
    page = Paginator(rows, MATRIX_PAGE_SIZE).get_page(request.GET.get("page", ""))
    return render(
        request,
        "secrets_admin/standard_adoption.html",
        {
            "page": page,
            "total": len(rows),
            "sort": sort,
            "items": adoption.ADOPTION_ITEMS,
            "columns": [("repo", "Repository"), ("passed", "Passed")],
            **_index_state(visible),
        },
    )
