"""Change requests, the decision side: a second person for protected environments
(invariant 4). Propose, approve, reject, cancel, break-glass bypass, acknowledge a bypass, and
apply again; what lands and expiry are in :mod:`.change_request_apply`.

Statuses: open -> approved -> applied | conflicted | expired (not applied in time:
:func:`~.change_request_apply.approved_deadline`); open -> rejected | cancelled | expired;
open -> bypassed (break-glass; applied, or conflicted). Every decision goes through
:func:`_transition`: a change of the request row locked inside a transaction
(``select_for_update``), so two approvers approving at once move it once and it is applied once;
the compare-and-swap on AWSCURRENT guards the write itself as well. A decision refused because
the request's deadline passed (:class:`PastDeadline`) also expires the request, so it shows
expired at once rather than when ``manage.py change_requests_expire`` next runs.

What binds an approval (invariant 4): the approver's form carries a signed digest of the page
they reviewed (:func:`change_request_reviewed_token`), checked under the row lock; the author
never approves or applies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, aws, diffs, documents, notifications, permissions
from ..changesets import Edit
from ..errors import (
    ChangeRequestNotFound,
    ChangeRequestNotOpen,
    ChangeRequestRefused,
    InvalidChange,
    InvalidInput,
    LabelLimit,
    SelfApproval,
    StateConflict,
)
from ..models import Approval, ChangeRequest
from .change_request_apply import (
    apply_decided,
    approved_deadline,
    change_request_expire_if_due,
    drop_label,
)
from .protocol import (
    Version,
    apply_for_write,
    compare,
    open_change_id,
    read_version,
    request_token,
    single_environment,
    source_identity,
)

Status = ChangeRequest.Status

#: The salt of the signed "what I reviewed" token an approve or apply form carries.
_REVIEWED_SALT = "secrets_admin.change_request_reviewed"


class ChangedSinceReview(StateConflict):
    """The request, its base or the current version moved since the approver's page was
    rendered: nothing was approved or applied (409; invariant 4: what lands is what was
    approved)."""


class PastDeadline(ChangeRequestNotOpen):
    """The request's deadline passed before this decision: nothing was decided, and the request
    was expired on the spot, as ``manage.py change_requests_expire`` would have (409)."""


def change_request_label(request_id: int) -> str:
    """The staging label of a request's proposed version: ``CR-<id>``."""
    return f"CR-{request_id}"


def _user_fields(user: Any) -> dict[str, str]:
    return {
        "author_username": user.get_username(),
        "author_email": getattr(user, "email", "") or "",
        "author_name": user.get_full_name() if hasattr(user, "get_full_name") else "",
    }


def _structure_of(changeset: Sequence[Edit]) -> list[dict[str, str]]:
    """A changeset without its values: ops and cell names only (what the database may hold)."""
    return [
        {"op": e.op, "environment": e.environment, "service": e.service, "key": e.key}
        for e in changeset
    ]


def _label_room(name: str, description: aws.SecretDescription) -> None:
    """Refuse when one more ``CR-<id>`` label would pass AWS's 20 labels per secret (moto does not
    enforce the quota). One label stays free for the saves' temporary label."""
    labels = aws.labels_in_use(description)
    needed = 1 + (0 if aws.STAGING_LABEL in labels else 1)
    if len(labels) + needed <= aws.LABEL_QUOTA:
        return
    requests = sum(1 for label in labels if label.startswith("CR-"))
    raise LabelLimit(
        f"{name} already carries {len(labels)} of the {aws.LABEL_QUOTA} staging labels AWS allows "
        f"per secret ({requests} of them for open change requests, and one is kept free for "
        "ordinary saves), so a new change request can't be staged. Approve, reject or cancel an "
        "open change request on this secret, then propose again. Nothing was proposed."
    )


def propose_on(
    *,
    name: str,
    base: Version,
    changeset: list[Edit],
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> ChangeRequest:
    """Open a change request for ``changeset`` on the version ``base`` (already read): stage the
    result labelled ``CR-<id>`` and store the request's metadata (no value). Raises as
    :func:`change_request_propose`."""
    user = context.user
    if user is None or not permissions.can(user, permissions.Action.PROPOSE):
        raise ChangeRequestRefused("Only engineers and above may propose change requests.")
    # Scopes: proposing needs the engineer role on this secret in every environment it touches.
    permissions.require_on(
        user, permissions.Action.PROPOSE, name, {e.environment for e in changeset}
    )
    nonce = open_change_id(change_id, context=context, name=name, base_version_id=base.version_id)
    new_doc, new_text = apply_for_write(name, base, changeset)
    landed = compare(name, base, new_doc, size_bytes=documents.size_bytes(new_text))
    cells = [c.as_detail() for c in landed.cells]
    # A double submit: the same id (signed for this author, secret and base) and the same cells.
    earlier = ChangeRequest.objects.filter(
        secret=name, change_id=nonce, author_username=user.get_username()
    ).first()
    if earlier is not None and earlier.base_version == base.version_id and earlier.cells == cells:
        return earlier
    if earlier is not None:
        raise InvalidChange("This change id was used for another change. Review it again.")
    _label_room(name, aws.describe(name))
    try:
        cr = ChangeRequest.objects.create(
            secret=name,
            environments=sorted({e.environment for e in changeset}),
            base_version=base.version_id,
            change_id=nonce,
            cells=cells,
            structure=_structure_of(changeset),
            author=user,
            required_approvals=settings.PORTAL_REQUIRED_APPROVALS,
            expires_at=timezone.now() + timedelta(days=settings.PORTAL_CHANGE_REQUEST_DAYS),
            comment=comment[:2000],
            **_user_fields(user),
        )
    except IntegrityError:  # the same change submitted twice at once
        return ChangeRequest.objects.get(secret=name, change_id=nonce)
    cr.label = change_request_label(cr.pk)
    token = request_token(name, cr.label, base.version_id)
    detail = {
        "kind": "change_request",
        "label": cr.label,
        "environments": cr.environments,
        "cells": cr.cells,
        "counts": diffs.count_changes(c["status"] for c in cr.cells),
        "structure": [
            {"status": c.status, "environment": c.environment, "service": c.service}
            for c in landed.structure
        ],
        "size_bytes": landed.size_bytes,
    }
    staged = ""
    try:
        with audit.attempt(
            audit.AuditAction.CHANGE_REQUEST_PROPOSE,
            context=context,
            secret=name,
            environment=single_environment(changeset),
            base_version=base.version_id,
            new_version=token,
            change_request=cr.pk,
            detail=detail,
        ) as handle:
            staged = aws.stage_version(
                name,
                text=new_text,
                token=token,
                source_identity=source_identity(context),
                label=cr.label,
            )
            handle.succeeded(new_version=staged, detail=detail)
    except BaseException:
        if staged:
            aws.drop_staging_label(name, version_id=staged, label=cr.label)
        cr.delete()  # metadata of a request that never opened (the audit log keeps the attempt)
        raise
    cr.staged_version = staged
    cr.save(update_fields=["label", "staged_version", "updated"])
    notifications.request_opened(cr)
    return cr


def change_request_propose(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit],
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> ChangeRequest:
    """Open a change request: ``changeset`` applied to version ``base_version_id`` is staged in
    Secrets Manager as a version labelled ``CR-<id>`` (``ClientRequestToken`` derived from the
    label and the base), and the database gets its metadata only (:class:`ChangeRequest`).

    Costs ``GetSecretValue`` (base) + ``DescribeSecret`` (label count) + ``PutSecretValue``.
    The approvers are emailed. A repeat of ``change_id`` returns the existing request.
    Raises, with nothing staged: :class:`~secrets_admin.errors.ChangeRequestRefused` (role),
    :class:`~secrets_admin.errors.InvalidChange`, :class:`~secrets_admin.errors.NoChanges`,
    :class:`~secrets_admin.errors.NotEditable`, :class:`~secrets_admin.errors.LabelLimit` (AWS's
    20 labels per secret), :class:`~secrets_admin.aws.SecretTooLarge`,
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    return propose_on(
        name=name,
        base=read_version(name, base_version_id),
        changeset=list(changeset),
        context=context,
        change_id=change_id,
        comment=comment,
    )


def change_request_get(request_id: int) -> ChangeRequest:
    """The request, or :class:`ChangeRequestNotFound`."""
    try:
        return ChangeRequest.objects.get(pk=request_id)
    except ChangeRequest.DoesNotExist:
        raise ChangeRequestNotFound() from None


def _refuse_unless_open(cr: ChangeRequest) -> None:
    if cr.status != Status.OPEN:
        raise ChangeRequestNotOpen(
            f"Change request #{cr.pk} is {cr.status}, no longer open: nothing was changed."
        )
    if cr.expires_at <= timezone.now():
        raise PastDeadline(
            f"Change request #{cr.pk} expired on {cr.expires_at:%Y-%m-%d %H:%M} UTC: nothing was "
            "changed. Propose the change again."
        )


def _is_author(cr: ChangeRequest, user: Any) -> bool:
    return bool(cr.author_id == user.pk or cr.author_username == user.get_username())


def _transition(
    *,
    request_id: int,
    context: audit.Context,
    action: str,
    decide: Callable[[ChangeRequest], tuple[list[str], dict[str, Any] | None]],
    attempt: Callable[[ChangeRequest], dict[str, Any]],
) -> ChangeRequest:
    """The one way a request's state changes: audit the attempt (fields from ``attempt``), lock
    the row (``select_for_update``), let ``decide`` refuse (raising) or change the request and
    name the fields it changed with the outcome's detail, save those fields, record success.

    Two people deciding at once are serialised by the lock, so a request leaves "open" once.
    A decision refused for the deadline (:class:`PastDeadline`) expires the request
    (:func:`~.change_request_apply.change_request_expire_if_due`) before the refusal is raised.
    Raises :class:`~secrets_admin.errors.ChangeRequestNotFound`, what ``decide`` raises,
    :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    cr = change_request_get(request_id)
    try:
        with audit.attempt(
            action, context=context, secret=cr.secret, change_request=cr.pk, **attempt(cr)
        ) as handle:
            with transaction.atomic():
                cr = ChangeRequest.objects.select_for_update().get(pk=request_id)
                fields, detail = decide(cr)
                cr.save(update_fields=[*fields, "updated"])
            if detail is None:
                handle.succeeded()
            else:
                handle.succeeded(detail=detail)
    except PastDeadline:
        change_request_expire_if_due(request_id)
        raise
    return cr


def _reviewed_digest(cr: ChangeRequest, current_version_id: str) -> str:
    """SHA-256 over what an approver's page showed: the request's versions, cells (fingerprints)
    and structure, and the version that was current when it was rendered. No value."""
    canonical = json.dumps(
        [cr.pk, cr.base_version, cr.staged_version, cr.cells, cr.structure, current_version_id],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def change_request_reviewed_token(cr: ChangeRequest, current_version_id: str) -> str:
    """The signed token an approve (or apply) form carries: the digest of the reviewed request
    and the ``AWSCURRENT`` version its page compared against (``django.core.signing``)."""
    return signing.dumps(
        {"r": cr.pk, "d": _reviewed_digest(cr, current_version_id)}, salt=_REVIEWED_SALT
    )


def _check_reviewed(cr: ChangeRequest, reviewed: str) -> None:
    """Refuse unless ``reviewed`` is this request's token and still matches it and the current
    version. Raises :class:`~secrets_admin.errors.InvalidInput` (400: missing or tampered),
    :class:`ChangedSinceReview` (409), :class:`~secrets_admin.aws.AwsError`."""
    try:
        data = signing.loads(reviewed[:1024], salt=_REVIEWED_SALT)
    except signing.BadSignature:
        raise InvalidInput(
            "The approval form does not say what you reviewed. Reload the request and review it."
        ) from None
    if not isinstance(data, dict) or data.get("r") != cr.pk:
        raise InvalidInput("The approval form belongs to another change request.")
    current = aws.current_of(aws.describe(cr.secret))
    if data.get("d") != _reviewed_digest(cr, current):
        raise ChangedSinceReview(
            f"Change request #{cr.pk} or its secret changed since you reviewed it (version "
            f"{current} is current now): nothing was approved or applied. Review it again."
        )


def _require_approver(context: audit.Context, what: str) -> Any:
    user = context.user
    if user is None or not permissions.can(user, permissions.Action.APPROVE):
        raise ChangeRequestRefused(f"Only approvers may {what}.")
    return user


def _require_scope(user: Any, cr: ChangeRequest) -> None:
    """Scopes: a request needs approvers whose scope covers every environment it touches."""
    if not permissions.may_approve(user, cr.secret, cr.environments):
        raise ChangeRequestRefused(
            "Your access rules do not give you the approver role on this secret in every "
            f"environment this request touches ({', '.join(cr.environments)}), so you can't "
            "decide on it.",
            status=HTTPStatus.FORBIDDEN,
        )


def _vote(
    *, request_id: int, context: audit.Context, decision: str, comment: str, reviewed: str = ""
) -> ChangeRequest:
    user = _require_approver(context, "approve or reject change requests")
    reject = decision == Approval.Decision.REJECT
    if reject and not comment.strip():
        raise ChangeRequestRefused("Say why you reject it: a comment is required.")

    def decide(cr: ChangeRequest) -> tuple[list[str], dict[str, Any]]:
        _refuse_unless_open(cr)
        if _is_author(cr, user):
            raise SelfApproval()
        _require_scope(user, cr)
        if cr.approvals.filter(approver=user).exists():
            raise ChangeRequestRefused("You have voted on this change request already.")
        if not reject:  # inside the lock: what is checked is what is decided
            _check_reviewed(cr, reviewed)
        Approval.objects.create(
            request=cr,
            approver=user,
            approver_username=user.get_username(),
            decision=decision,
            comment=comment[:2000],
        )
        approvals = (
            cr.approvals.filter(decision=Approval.Decision.APPROVE)
            .exclude(approver_username=cr.author_username)
            .count()
        )
        if reject:
            cr.status = Status.REJECTED
        elif approvals >= cr.required_approvals:
            cr.status = Status.APPROVED
        detail = {"status": cr.status, "approvals": approvals, "required": cr.required_approvals}
        return ["status"], detail

    cr = _transition(
        request_id=request_id,
        context=context,
        action=(
            audit.AuditAction.CHANGE_REQUEST_REJECT
            if reject
            else audit.AuditAction.CHANGE_REQUEST_APPROVE
        ),
        decide=decide,
        attempt=lambda cr: {"base_version": cr.base_version, "new_version": cr.staged_version},
    )
    by = user.get_username()
    if cr.status == Status.REJECTED:
        drop_label(cr, context)
        notifications.author_told(cr, "rejected", by=by, comment=comment)
    elif cr.status == Status.APPROVED:
        notifications.author_told(cr, "approved", by=by, comment=comment)
        return apply_decided(cr, context)
    return cr


def change_request_approve(
    *, request_id: int, context: audit.Context, reviewed: str, comment: str = ""
) -> ChangeRequest:
    """Record ``context.user``'s approval; when approvals are complete, apply the request.

    ``reviewed`` is the token of the page the approver saw
    (:func:`change_request_reviewed_token`): when the request or the current version changed
    since, nothing is recorded or applied (:class:`ChangedSinceReview`, 409; a missing or
    tampered token is :class:`~secrets_admin.errors.InvalidInput`, 400). The author can never
    approve (admins included: :class:`~secrets_admin.errors.SelfApproval`); one vote per
    approver; only approver and admin roles vote. Returns the request as it ends (``open``,
    ``applied`` or ``conflicted``). Raises :class:`~secrets_admin.errors.ChangeRequestRefused`
    (``ChangeRequestNotOpen`` when decided or expired),
    :class:`~secrets_admin.errors.ChangeRequestNotFound`,
    :class:`~secrets_admin.audit.AuditUnavailable`, and what :func:`change_request_apply` raises.
    """
    return _vote(
        request_id=request_id,
        context=context,
        decision=Approval.Decision.APPROVE,
        comment=comment,
        reviewed=reviewed,
    )


def change_request_reject(
    *, request_id: int, context: audit.Context, comment: str
) -> ChangeRequest:
    """Reject the request (a comment is required): nothing is applied, its label is removed and
    the author told. Same refusals as :func:`change_request_approve`."""
    return _vote(
        request_id=request_id, context=context, decision=Approval.Decision.REJECT, comment=comment
    )


def change_request_cancel(*, request_id: int, context: audit.Context) -> ChangeRequest:
    """The author withdraws their open request; its label is removed. Only the author may
    (:class:`~secrets_admin.errors.ChangeRequestRefused`)."""
    user = context.user

    def decide(cr: ChangeRequest) -> tuple[list[str], None]:
        if user is None or not _is_author(cr, user):
            raise ChangeRequestRefused("Only the author of a change request may cancel it.")
        if cr.status != Status.OPEN:
            raise ChangeRequestNotOpen(f"Change request #{cr.pk} is {cr.status} already.")
        cr.status = Status.CANCELLED
        return ["status"], None

    cr = _transition(
        request_id=request_id,
        context=context,
        action=audit.AuditAction.CHANGE_REQUEST_CANCEL,
        decide=decide,
        attempt=lambda cr: {"new_version": cr.staged_version},
    )
    drop_label(cr, context)
    return cr


def change_request_bypass(*, request_id: int, context: audit.Context, reason: str) -> ChangeRequest:
    """Break-glass: an admin named in ``PORTAL_BREAK_GLASS_USERS`` applies their OWN open request
    without approval, giving a reason. The request ends ``bypassed`` (or ``conflicted``); it is
    listed for approvers until one acknowledges it (:func:`change_request_acknowledge`).

    Raises :class:`~secrets_admin.errors.ChangeRequestRefused` (not enabled for this person, no
    reason, someone else's request, not open) and what :func:`change_request_apply` raises.
    """
    user = context.user
    if not break_glass_allowed(user, change_request_get(request_id).secret):
        raise ChangeRequestRefused("Break-glass is not enabled for you.")
    if not reason.strip():
        raise ChangeRequestRefused("Give the reason for applying without approval.")

    def decide(cr: ChangeRequest) -> tuple[list[str], dict[str, Any]]:
        if not _is_author(cr, user):
            raise ChangeRequestRefused(
                "Break-glass applies only your own request; others' requests are approved."
            )
        _refuse_unless_open(cr)
        cr.status = Status.BYPASSED
        cr.bypass_reason = reason[:2000]
        return ["status", "bypass_reason"], {"break_glass": True, "reason": cr.bypass_reason}

    # The reason is part of the hash-chained events (attempt and outcome), so editing the
    # column afterwards does not change what the audit log says was given.
    cr = _transition(
        request_id=request_id,
        context=context,
        action=audit.AuditAction.CHANGE_REQUEST_BYPASS,
        decide=decide,
        attempt=lambda cr: {
            "new_version": cr.staged_version,
            "detail": {"break_glass": True, "reason": reason[:2000]},
        },
    )
    return apply_decided(cr, context)


def break_glass_allowed(user: Any, secret: str) -> bool:
    """Whether ``user`` is named in ``PORTAL_BREAK_GLASS_USERS`` (off when empty) and holds the
    admin role on ``secret``."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.get_username() in settings.PORTAL_BREAK_GLASS_USERS
        and permissions.can(user, permissions.Action.ADMINISTER_SECRETS, secret)
    )


def change_request_acknowledge(*, request_id: int, context: audit.Context) -> ChangeRequest:
    """An approver (not the author) acknowledges a break-glass bypass, so it leaves the list of
    bypasses to review. Raises :class:`~secrets_admin.errors.ChangeRequestRefused`."""
    user = _require_approver(context, "acknowledge a bypass")

    def decide(cr: ChangeRequest) -> tuple[list[str], None]:
        if not cr.bypass_reason or cr.bypass_acknowledged_at is not None:
            raise ChangeRequestRefused("There is no unacknowledged bypass on this request.")
        if _is_author(cr, user):
            raise SelfApproval()
        _require_scope(user, cr)
        cr.bypass_acknowledged_by = user
        cr.bypass_acknowledged_at = timezone.now()
        return ["bypass_acknowledged_by", "bypass_acknowledged_at"], None

    return _transition(
        request_id=request_id,
        context=context,
        action=audit.AuditAction.CHANGE_REQUEST_ACKNOWLEDGE,
        decide=decide,
        attempt=lambda cr: {},
    )


def change_request_apply(
    *, request_id: int, context: audit.Context, reviewed: str
) -> ChangeRequest:
    """Apply an approved request again (normally the approval that completes it applies it;
    this is for a first try that failed on an AWS error), by an approver who is not its author
    (invariant 4: the author never chooses when an approval lands), before
    :func:`~.change_request_apply.approved_deadline`, on the page the approver reviewed (``reviewed``, as for
    :func:`change_request_approve`). See :func:`~.change_request_apply.apply_decided`.

    Raises :class:`~secrets_admin.errors.ChangeRequestNotOpen` (not approved, or applied),
    :class:`PastDeadline` (past its deadline: the request is expired at once),
    :class:`~secrets_admin.errors.SelfApproval`,
    :class:`~secrets_admin.errors.ChangeRequestRefused` (role), :class:`ChangedSinceReview`,
    :class:`~secrets_admin.errors.InvalidInput`, and what
    :func:`~.change_request_apply.apply_decided` raises.
    """
    cr = change_request_get(request_id)
    if cr.status != Status.APPROVED or cr.applied_version:
        raise ChangeRequestNotOpen(f"Change request #{cr.pk} is {cr.status}: nothing to apply.")
    user = _require_approver(context, "apply a change request")
    if _is_author(cr, user):
        raise ChangeRequestRefused(
            "You proposed this change request, so someone else has to apply it.",
            HTTPStatus.FORBIDDEN,
        )
    deadline = approved_deadline(cr)
    if deadline <= timezone.now():
        change_request_expire_if_due(cr.pk)
        raise PastDeadline(
            f"Change request #{cr.pk} was approved but not applied by {deadline:%Y-%m-%d %H:%M} "
            "UTC, so it expired: nothing was changed. Propose the change again."
        )
    _check_reviewed(cr, reviewed)
    return apply_decided(cr, context)
