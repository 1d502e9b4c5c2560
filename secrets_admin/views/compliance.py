"""The compliance screen: every way the account breaks the standard, linked to where to fix it."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import compliance as checks
from .. import errors, lint
from ..permissions import Action, require
from .errors import error_response


@require_GET
@never_cache
@require(Action.VIEW)
def compliance(request: HttpRequest) -> HttpResponse:
    """Every finding (``severity`` filters to errors or warnings), from the brief cache."""
    try:
        # Only the findings and counts of secrets in the person's scope.
        report = lint.for_user(lint.run(), request.user)
    except errors.PortalError as exc:
        return error_response(request, exc)
    severity = request.GET.get("severity", "")
    if severity not in checks.SEVERITIES:
        severity = ""
    findings = [f for f in report.findings if not severity or f.severity == severity]
    return render(
        request,
        "secrets_admin/compliance.html",
        {
            "report": report,
            "rows": [{"finding": f, "fix_url": lint.fix_url(f)} for f in findings],
            "severity": severity,
            "checked_at": datetime.fromtimestamp(report.checked_at, UTC),
            "cache_seconds": settings.PORTAL_COMPLIANCE_CACHE_SECONDS,
            "rules": checks.RULES,
        },
    )


@require_POST
@require(Action.VIEW)
def compliance_refresh(request: HttpRequest) -> HttpResponse:
    """Drop the cached findings so the next compliance view reads every secret again."""
    lint.invalidate()
    return redirect("secrets_admin:compliance")
