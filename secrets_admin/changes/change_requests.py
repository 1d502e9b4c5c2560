"""Change requests: a second person for protected environments (invariant 4).

Statuses: open -> approved -> applied | conflicted | expired (not applied in time:
:func:`approved_deadline`); open -> rejected | cancelled | expired; open -> bypassed
(break-glass; applied, or conflicted). Every transition out of "open" goes through
:func:`_transition`: a change of the request row locked inside a transaction
(``select_for_update``), so two approvers approving at once move it once and it is applied once;
the compare-and-swap on AWSCURRENT guards the write itself as well.

What binds an approval (invariant 4): the approver's form carries a signed digest of the page
they reviewed (:func:`change_request_reviewed_token`), checked under the row lock; the author
never approves or applies; "applied" is recorded only when ``AWSCURRENT`` holds the request's
cells (:func:`current_holds`); the apply path mints its own change id, never one a person could
submit. The ``CR-<id>`` label is removed from every version that carries it whenever a request
leaves "open"/"approved", so no label is left behind, even one moved outside the portal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, aws, documents, notifications, permissions
from ..documents import Edit
from ..errors import (
    ChangeRequestNotFound,
    ChangeRequestNotOpen,
    ChangeRequestRefused,
    Conflict,
    InvalidChange,
    InvalidInput,
    LabelLimit,
    NoChanges,
    SelfApproval,
    StateConflict,
)
from ..models import Approval, ChangeRequest
from .protocol import (
    MAX_REBASES,
    CellRef,
    Version,
    apply_for_write,
    cell_state,
    compare,
    listing_write_through,
    new_change_id,
    open_change_id,
    read_version,
    request_token,
    save_changeset,
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


class NotLanded(StateConflict):
    """The apply ran but Secrets Manager's ``AWSCURRENT`` does not hold the request's cells:
    the request stays approved (409)."""


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


def changeset_from(structure: Sequence[dict[str, str]], staged: dict[str, Any]) -> list[Edit]:
    """Rebuild a request's changeset: its structure, with each ``set`` value read from the staged
    (proposed) document. A value a later edit of the same changeset removed is not needed."""
    edits = []
    for item in structure:
        cell = (item["environment"], item["service"], item["key"])
        value = documents.lookup(staged, cell)[1] if item["op"] == "set" else None
        edits.append(Edit(item["op"], *cell, value=value))  # type: ignore[arg-type]
    return edits


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


def _counts(cells: Sequence[dict[str, str]]) -> dict[str, int]:
    out = {"added": 0, "changed": 0, "removed": 0}
    for c in cells:
        out["changed" if c["status"] == "type_changed" else c["status"]] += 1
    return out


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
        "counts": _counts(cr.cells),
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
        raise ChangeRequestNotOpen(
            f"Change request #{cr.pk} expired on {cr.expires_at:%Y-%m-%d %H:%M} UTC: nothing was "
            "changed. Propose the change again."
        )


def _is_author(cr: ChangeRequest, user: Any) -> bool:
    return bool(cr.author_id == user.pk or cr.author_username == user.get_username())


def _drop_label(cr: ChangeRequest, context: audit.Context | None = None) -> None:
    """Remove the request's ``CR-<id>`` label from every version that carries it (one
    ``DescribeSecret``, one ``UpdateSecretVersionStage`` per version found). A label found on
    another version than the staged one was moved outside the portal: it is removed too, and
    ``outcome_message`` says so (the request page shows it)."""
    if not cr.label:
        return
    identity = source_identity(context) if context else ""
    try:
        holders = [
            version
            for version, labels in aws.describe(cr.secret).versions_to_stages.items()
            if cr.label in labels
        ]
    except aws.AwsError:  # e.g. the secret was deleted: nothing left to clean
        holders = [cr.staged_version] if cr.staged_version else []
    moved = [v for v in holders if v != cr.staged_version]
    for version in holders:
        aws.drop_staging_label(
            cr.secret, version_id=version, label=cr.label, source_identity=identity
        )
    if moved:
        note = (
            f"The label {cr.label} had been moved outside the portal to version "
            f"{', '.join(moved)}; the portal removed it there too."
        )
        cr.outcome_message = f"{cr.outcome_message} {note}".strip()
        cr.save(update_fields=["outcome_message", "updated"])


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
    Raises :class:`~secrets_admin.errors.ChangeRequestNotFound`, what ``decide`` raises,
    :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    cr = change_request_get(request_id)
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


def approved_deadline(cr: ChangeRequest) -> datetime:
    """When an approved request that has not been applied expires: the request's own
    ``expires_at``, or ``PORTAL_APPROVED_CHANGE_REQUEST_HOURS`` after its last approval when
    that setting is set (an old approval must not land at a time of the author's choosing)."""
    hours = settings.PORTAL_APPROVED_CHANGE_REQUEST_HOURS
    if not hours:
        return cr.expires_at
    last = cr.approvals.filter(decision=Approval.Decision.APPROVE).order_by("-created").first()
    start = last.created if last is not None else cr.updated
    return start + timedelta(hours=int(hours))


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
        _drop_label(cr, context)
        notifications.author_told(cr, "rejected", by=by, comment=comment)
    elif cr.status == Status.APPROVED:
        notifications.author_told(cr, "approved", by=by, comment=comment)
        return _apply(cr, context)
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
    _drop_label(cr, context)
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
    return _apply(cr, context)


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
    :func:`approved_deadline`, on the page the approver reviewed (``reviewed``, as for
    :func:`change_request_approve`). See :func:`_apply`.

    Raises :class:`~secrets_admin.errors.ChangeRequestNotOpen` (not approved, applied or past
    its deadline), :class:`~secrets_admin.errors.SelfApproval`,
    :class:`~secrets_admin.errors.ChangeRequestRefused` (role), :class:`ChangedSinceReview`,
    :class:`~secrets_admin.errors.InvalidInput`, and what :func:`_apply` raises.
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
        raise ChangeRequestNotOpen(
            f"Change request #{cr.pk} was approved but not applied by {deadline:%Y-%m-%d %H:%M} "
            "UTC, so it expired: nothing was changed. Propose the change again."
        )
    _check_reviewed(cr, reviewed)
    return _apply(cr, context)


def _apply(cr: ChangeRequest, context: audit.Context) -> ChangeRequest:
    """The write protocol for a request: AWSCURRENT still on the base -> move it to
    the staged version (``aws.promote``); the base moved but none of the request's cells changed
    -> rebase onto current and save it through the normal path (:func:`_save`); any of its cells
    changed -> ``conflicted`` (approvals void), nothing applied, the author told.

    Costs ``DescribeSecret`` + ``UpdateSecretVersionStage`` x 2 (promote, drop ``CR-<id>``)
    when the base did not move. Raises :class:`~secrets_admin.aws.AwsError` and
    :class:`SaveContended` with the request left ``approved`` (apply again later).
    """
    final = Status.BYPASSED if cr.status == Status.BYPASSED else Status.APPLIED
    detail = {
        "kind": "change_request",
        "change_request": cr.pk,
        "author": cr.author_username,
        "approvers": list(
            cr.approvals.filter(decision=Approval.Decision.APPROVE).values_list(
                "approver_username", flat=True
            )
        ),
        "break_glass": final == Status.BYPASSED,
    }
    version = ""
    conflicts: list[CellRef] = []
    if aws.current_of(aws.describe(cr.secret)) == cr.base_version:
        version = _promote(cr, context, detail)
    if not version:
        version, conflicts = _rebase_and_save(cr, context, detail)
    if conflicts:
        cr.status = Status.CONFLICTED
        cr.outcome_message = "changed since the proposal: " + ", ".join(
            " / ".join(c for c in cell if c) for cell in conflicts
        )
    else:
        landed = current_holds(cr)
        if landed is None:
            cr.outcome_message = (
                "The apply ran, but the current version in Secrets Manager does not hold this "
                "request's cells, so it is not applied. An approver can apply it again."
            )
            cr.save(update_fields=["outcome_message", "updated"])
            raise NotLanded(cr.outcome_message)
        cr.status = final
        cr.applied_version = landed
    cr.save(update_fields=["status", "applied_version", "outcome_message", "updated"])
    _drop_label(cr, context)
    if cr.applied_version:
        listing_write_through(cr.secret, cr.applied_version)
    notifications.author_told(
        cr, "conflicted" if conflicts else "applied", by=source_identity(context)
    )
    return cr


def current_holds(cr: ChangeRequest) -> str | None:
    """The ``AWSCURRENT`` version id when it holds every cell of the request (its ``after``
    fingerprint, or absent for a removed cell), else ``None``: "applied" is checked against
    Secrets Manager, never inferred. One ``GetSecretValue``; raises
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.errors.NotEditable`."""
    current = read_version(cr.secret)
    for cell in cr.cells:
        state = cell_state(current.document, (cell["environment"], cell["service"], cell["key"]))
        if cell["status"] == "removed":
            if state.present:
                return None
        elif not state.present or state.fingerprint != cell["after"]:
            return None
    return current.version_id


def _promote(cr: ChangeRequest, context: audit.Context, detail: dict[str, Any]) -> str:
    """Move AWSCURRENT from the base to the staged version; ``""`` when the base moved meanwhile."""
    full = {
        **detail,
        "mode": "promote",
        "cells": cr.cells,
        "counts": _counts(cr.cells),
        "environments": cr.environments,
    }
    with audit.attempt(
        audit.AuditAction.CHANGE_REQUEST_APPLY,
        context=context,
        secret=cr.secret,
        environment=cr.environments[0] if len(cr.environments) == 1 else "",
        base_version=cr.base_version,
        new_version=cr.staged_version,
        change_request=cr.pk,
        detail=full,
    ) as handle:
        try:
            aws.promote(
                cr.secret,
                version_id=cr.staged_version,
                base_version_id=cr.base_version,
                source_identity=source_identity(context),
            )
        except aws.CurrentMoved as moved:
            handle.failed(error_code=moved.code, detail={**full, "then": "rebase"})
            return ""
        handle.succeeded(detail=full)
    return cr.staged_version


def _rebase_and_save(
    cr: ChangeRequest, context: audit.Context, detail: dict[str, Any]
) -> tuple[str, list[CellRef]]:
    """The base moved: the applied version's id, or the conflicting cells (nothing written)."""
    base = read_version(cr.secret, cr.base_version)
    staged = read_version(cr.secret, cr.staged_version)
    current = read_version(cr.secret)
    changeset = changeset_from(cr.structure, staged.document)
    clashes = documents.conflicting_cells(base.document, current.document, changeset)
    if clashes:
        audit.record(
            audit.AuditAction.CHANGE_REQUEST_APPLY,
            context=context,
            outcome=audit.Outcome.CONFLICTED,
            secret=cr.secret,
            base_version=cr.base_version,
            change_request=cr.pk,
            detail={
                **detail,
                "current_version": current.version_id,
                "conflicts": [{"environment": e, "service": s, "key": k} for e, s, k in clashes],
            },
        )
        return "", clashes
    try:
        result = save_changeset(
            name=cr.secret,
            base=current,
            changeset=documents.rebase_changeset(current.document, changeset),
            context=context,
            # Minted here for this approver and base: never a number a person could submit too.
            change_id=new_change_id(
                user=context.user, name=cr.secret, base_version_id=current.version_id
            ),
            max_rebases=MAX_REBASES,
            action=audit.AuditAction.CHANGE_REQUEST_APPLY,
            detail={**detail, "mode": "rebase", "rebased_from": cr.base_version},
            change_request=cr.pk,
        )
    except NoChanges:  # someone else already made exactly this change
        return current.version_id, []
    except Conflict as conflict:  # a save between our read and our swap touched its cells
        return "", [(c.environment, c.service, c.key) for c in conflict.cells]
    return result.new_version_id, []


def change_requests_expire(*, now: datetime | None = None) -> list[int]:
    """Mark open requests past ``expires_at`` as expired, record it, remove their labels and
    tell their authors. Returns the expired ids. Run by ``manage.py change_requests_expire``
    (never by a GET: listing requests writes nothing); a decision on an expired request is
    refused by the decision itself."""
    now = now or timezone.now()
    context = audit.Context.system("change_requests_expire")
    done = []
    stale = [
        cr
        for cr in ChangeRequest.objects.filter(
            status__in=[Status.OPEN, Status.APPROVED], applied_version=""
        ).filter(expires_at__lte=now)
    ]
    stale += [
        cr
        for cr in ChangeRequest.objects.filter(
            status=Status.APPROVED, applied_version="", expires_at__gt=now
        )
        if approved_deadline(cr) <= now
    ]
    for cr in stale:
        claimed = ChangeRequest.objects.filter(pk=cr.pk, status=cr.status).update(
            status=Status.EXPIRED, updated=now
        )
        if not claimed:
            continue  # decided meanwhile
        cr.status = Status.EXPIRED
        audit.record(
            audit.AuditAction.CHANGE_REQUEST_EXPIRE,
            context=context,
            secret=cr.secret,
            change_request=cr.pk,
            new_version=cr.staged_version,
        )
        _drop_label(cr)
        notifications.author_told(cr, "expired")
        done.append(cr.pk)
    return done
