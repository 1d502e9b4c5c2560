"""The auditor's proof downloads (README "Audit you can prove"): the evidence pack of one
change request. Everyone from auditor up (``VIEW``)."""

from __future__ import annotations

from http import HTTPStatus

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .. import audit, audit_devices, evidence
from ..models import ChangeRequest
from ..permissions import Action, require


@require_POST
@never_cache
@require(Action.VIEW)
def audit_evidence(request: HttpRequest, pk: int) -> HttpResponse:
    """Download change request ``pk``'s evidence pack (one JSON file, checked offline with
    ``manage.py audit_verify --pack FILE``). The download is recorded first (fail closed);
    404 for an unknown request, 503 when the audit log or the anchor sink cannot be reached."""
    if not ChangeRequest.objects.filter(pk=pk).exists():
        raise Http404("No such change request")
    try:
        audit.record(
            audit.AuditAction.AUDIT_EXPORT,
            context=audit.Context.from_request(request),
            detail={"format": "evidence_pack", "change_request": pk},
        )
        data = evidence.build(pk)
    except audit.AuditUnavailable as exc:
        return HttpResponse(
            exc.message, status=HTTPStatus.SERVICE_UNAVAILABLE, content_type="text/plain"
        )
    except evidence.EvidenceError as exc:
        return HttpResponse(
            f"No evidence pack: {exc}.", status=HTTPStatus.CONFLICT, content_type="text/plain"
        )
    except audit_devices.SINK_ERRORS:
        return HttpResponse(
            "The anchor sink could not be reached, so the pack cannot be tied to a signed "
            "anchor. Try again later; if it persists, tell the portal's operators.",
            status=HTTPStatus.SERVICE_UNAVAILABLE,
            content_type="text/plain",
        )
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{evidence.filename(pk)}"'
    return response
