"""Change requests: the list (mine, waiting for me, by secret), one request with its per-cell
diff between CURRENT and PROPOSED (masked; reveal for engineers and up through ``cell_reveal``
on the current or the staged version), and the decisions (approve, reject, cancel, break-glass
bypass, acknowledge a bypass), all POST. Rules live in ``secrets_admin.changes.change_requests``; these views translate.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import audit, aws, errors, permissions, reads
from ..changes import change_requests
from ..models import ChangeRequest
from ..permissions import Action, require

FILTERS = ("open", "mine", "waiting", "all")


def _load(request_id: int) -> ChangeRequest:
    try:
        return change_requests.change_request_get(request_id)
    except errors.ChangeRequestNotFound as exc:
        raise Http404(exc.message) from None


@require_GET
@never_cache
@require(Action.VIEW)
def change_request_list(request: HttpRequest) -> HttpResponse:
    """Requests, newest first. ``show``: open (default), mine, waiting (for me), all;
    ``secret``: one secret's. Reads only: expiring requests is ``manage.py
    change_requests_expire``'s job (a GET never writes), and a request past its deadline
    can't be decided (the decision refuses it and expires the request at once)."""
    show = request.GET.get("show", "open")
    if show not in FILTERS:
        show = "open"
    secret = request.GET.get("secret", "")[:512]
    requests = reads.change_requests_for(
        request.user,
        mine=show == "mine",
        waiting=show == "waiting",
        secret=secret,
        status="open" if show == "open" else "",
    )
    can_approve = permissions.can(request.user, Action.APPROVE)
    page = Paginator(requests, settings.PORTAL_LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "secrets_admin/change_request_list.html",
        {
            "page": page,
            "show": show,
            "secret": secret,
            "filters": FILTERS,
            "bypasses": reads.bypasses_to_review(request.user) if can_approve else [],
        },
    )


@require_GET
@never_cache
@require(Action.VIEW)
def change_request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    """One request: its facts, votes, and while it is open the cells it would change on the
    current version (current vs proposed, masked)."""
    return _detail(request, _load(request_id))


def _detail(
    request: HttpRequest, cr: ChangeRequest, *, refusal: str = "", status: int = HTTPStatus.OK
) -> HttpResponse:
    review = None
    error = ""
    if cr.status in (ChangeRequest.Status.OPEN, ChangeRequest.Status.APPROVED):
        try:
            review = reads.change_request_review(cr)
        except errors.PortalError as exc:
            error = exc.message
    user = request.user
    is_author = cr.author_username == user.get_username()
    may_decide = permissions.may_approve(user, cr.secret, cr.environments)
    # What this page shows, signed: the approve / apply forms carry it back (invariant 4).
    reviewed = (
        change_requests.change_request_reviewed_token(cr, review.current_version_id)
        if review is not None
        else ""
    )
    return render(
        request,
        "secrets_admin/change_request_detail.html",
        {
            "cr": cr,
            "review": review,
            "error": error,
            "approvals": cr.approvals.all(),
            "is_author": is_author,
            "can_reveal": permissions.can(user, Action.REVEAL, cr.secret),
            "can_vote": may_decide and not is_author and cr.is_open,
            "can_apply": may_decide
            and not is_author
            and cr.status == ChangeRequest.Status.APPROVED
            and not cr.applied_version,
            "reviewed": reviewed,
            "can_break_glass": is_author
            and cr.is_open
            and change_requests.break_glass_allowed(user, cr.secret),
            "can_acknowledge": bool(
                cr.bypass_reason
                and cr.bypass_acknowledged_at is None
                and may_decide
                and not is_author
            ),
            "reveal_seconds": settings.PORTAL_REVEAL_SECONDS,
            "refusal": refusal,
        },
        status=status,
    )


def _decide(
    request: HttpRequest,
    request_id: int,
    decision: Callable[..., ChangeRequest],
    *posted: str,
) -> HttpResponse:
    """Run one decision (a use case of ``secrets_admin.changes.change_requests``, called with
    ``request_id``, the audit context and the ``posted`` POST fields by name); a refusal shows
    the request again with the reason at the refusal's own status
    (:class:`~secrets_admin.errors.PortalError`: 403 for the author's own vote, 409 for a
    request no longer open, 400 for bad input, 503 when the audit log is down); an AWS failure
    leaves the request approved (apply again later); an outcome redirects to the request with a
    sentence saying what happened (invariant 6)."""
    _load(request_id)
    fields = {field: request.POST.get(field, "") for field in posted}
    try:
        cr = decision(request_id=request_id, context=audit.Context.from_request(request), **fields)
    except aws.AwsError as exc:
        messages.error(request, f"{exc.message} The request stays approved; apply it again later.")
        return redirect("secrets_admin:change_request_detail", request_id=request_id)
    except errors.PortalError as exc:
        return _detail(request, _load(request_id), refusal=exc.message, status=exc.status)
    messages.success(request, _outcome_sentence(cr))
    return redirect("secrets_admin:change_request_detail", request_id=request_id)


def _outcome_sentence(cr: ChangeRequest) -> str:
    s = ChangeRequest.Status
    return {
        s.OPEN: f"Recorded. Change request #{cr.pk} waits for more approvals.",
        s.APPLIED: f"Change request #{cr.pk} is applied: version {cr.applied_version} is current.",
        s.BYPASSED: (
            f"Change request #{cr.pk} was applied without approval (break-glass): version "
            f"{cr.applied_version} is current. Approvers will review it."
        ),
        s.CONFLICTED: (
            f"Change request #{cr.pk} conflicted ({cr.outcome_message}); nothing was applied and "
            "the author was told."
        ),
        s.REJECTED: f"Change request #{cr.pk} is rejected; nothing was applied.",
        s.CANCELLED: f"Change request #{cr.pk} is cancelled; nothing was applied.",
        s.APPROVED: f"Change request #{cr.pk} is approved and being applied.",
    }.get(ChangeRequest.Status(cr.status), f"Change request #{cr.pk} is {cr.status}.")


@require_POST
@never_cache
@require(Action.APPROVE)
def change_request_approve(request: HttpRequest, request_id: int) -> HttpResponse:
    """Approve (POST ``reviewed``: the page's signed token, ``comment`` optional); applies when
    approvals are complete. A page older than the request or the current version is a 409."""
    return _decide(
        request, request_id, change_requests.change_request_approve, "comment", "reviewed"
    )


@require_POST
@never_cache
@require(Action.APPROVE)
def change_request_reject(request: HttpRequest, request_id: int) -> HttpResponse:
    """Reject (POST ``comment`` required)."""
    return _decide(request, request_id, change_requests.change_request_reject, "comment")


@require_POST
@never_cache
@require(Action.PROPOSE)
def change_request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    """The author withdraws their request."""
    return _decide(request, request_id, change_requests.change_request_cancel)


@require_POST
@never_cache
@require(Action.ADMINISTER_SECRETS)
def change_request_bypass(request: HttpRequest, request_id: int) -> HttpResponse:
    """Break-glass (admins in ``PORTAL_BREAK_GLASS_USERS``): apply one's own request without
    approval, POST ``reason`` required."""
    return _decide(request, request_id, change_requests.change_request_bypass, "reason")


@require_POST
@never_cache
@require(Action.APPROVE)
def change_request_acknowledge(request: HttpRequest, request_id: int) -> HttpResponse:
    """An approver acknowledges a break-glass bypass."""
    return _decide(request, request_id, change_requests.change_request_acknowledge)


@require_POST
@never_cache
@require(Action.APPROVE)
def change_request_apply(request: HttpRequest, request_id: int) -> HttpResponse:
    """Apply an approved request again after its first try failed on an AWS error (an
    approver who is not the author; POST ``reviewed`` as for approving)."""
    return _decide(request, request_id, change_requests.change_request_apply, "reviewed")
