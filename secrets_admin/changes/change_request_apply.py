"""Change requests, the apply side: what lands when a request is approved or bypassed, and what
happens to requests nobody decided in time.

Applying (invariant 4: what lands is exactly what was approved): when ``AWSCURRENT`` is still on
the request's base, the staged ``CR-<id>`` version is promoted with the write protocol's swap;
when the base moved and none of the request's cells changed, its changeset is rebased onto
current and saved through the normal path; otherwise the request ends ``conflicted``. "Applied"
is recorded only when ``AWSCURRENT`` holds the request's cells (:func:`current_holds`), and the
apply path mints its own change id, never one a person could submit.

Expiry: an open request past ``expires_at``, or an approved one not applied by
:func:`approved_deadline`, ends ``expired`` (:func:`change_requests_expire`, run by
``manage.py change_requests_expire``; a decision refused for the deadline expires its request
at once through :func:`change_request_expire_if_due`).

Whenever a request leaves "open"/"approved", its ``CR-<id>`` label is removed from every version
that carries it (:func:`drop_label`), so no label is left behind, even one moved outside the
portal. The decisions themselves live in :mod:`.change_requests`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .. import audit, aws, changesets, diffs, documents, notifications
from ..changesets import Edit
from ..errors import Conflict, NoChanges, StateConflict
from ..models import Approval, ChangeRequest
from .protocol import (
    MAX_REBASES,
    CellRef,
    cell_state,
    listing_write_through,
    new_change_id,
    read_version,
    save_changeset,
    source_identity,
)

Status = ChangeRequest.Status


class NotLanded(StateConflict):
    """The apply ran but Secrets Manager's ``AWSCURRENT`` does not hold the request's cells:
    the request stays approved (409)."""


def changeset_from(structure: Sequence[dict[str, str]], staged: dict[str, Any]) -> list[Edit]:
    """Rebuild a request's changeset: its structure, with each ``set`` value read from the staged
    (proposed) document. A value a later edit of the same changeset removed is not needed."""
    edits = []
    for item in structure:
        cell = (item["environment"], item["service"], item["key"])
        value = documents.lookup(staged, cell)[1] if item["op"] == "set" else None
        edits.append(Edit(item["op"], *cell, value=value))  # type: ignore[arg-type]
    return edits


def drop_label(cr: ChangeRequest, context: audit.Context | None = None) -> None:
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


def apply_decided(cr: ChangeRequest, context: audit.Context) -> ChangeRequest:
    """Apply a request that was just approved (or bypassed): the write protocol for a request.
    AWSCURRENT still on the base -> move it to the staged version (``aws.promote``); the base
    moved but none of the request's cells changed -> rebase onto current and save it through
    the normal path (``save_changeset``); any of its cells changed -> ``conflicted`` (approvals
    void), nothing applied, the author told.

    Costs ``DescribeSecret`` + ``UpdateSecretVersionStage`` x 2 (promote, drop ``CR-<id>``)
    when the base did not move. Raises :class:`~secrets_admin.aws.AwsError` and
    :class:`~secrets_admin.errors.SaveContended` with the request left ``approved`` (apply
    again later), :class:`NotLanded`.
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
    drop_label(cr, context)
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
        "counts": diffs.count_changes(c["status"] for c in cr.cells),
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
    clashes = changesets.conflicting_cells(base.document, current.document, changeset)
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
            changeset=changesets.rebase_changeset(current.document, changeset),
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
    """Mark open requests past ``expires_at``, and approved ones not applied by
    :func:`approved_deadline`, as expired (:func:`_expire`). Returns the expired ids. Run by
    ``manage.py change_requests_expire`` (never by a GET: listing requests writes nothing); a
    decision refused for the deadline expires its own request at once
    (:func:`change_request_expire_if_due`)."""
    now = now or timezone.now()
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
    return [cr.pk for cr in stale if _expire(cr, now)]


def change_request_expire_if_due(request_id: int, *, now: datetime | None = None) -> bool:
    """Expire request ``request_id`` when it is past its deadline (open past ``expires_at``;
    approved and not applied past ``expires_at`` or :func:`approved_deadline`), exactly as
    :func:`change_requests_expire` would. Called after a decision was refused for the deadline,
    so the request shows expired at once instead of waiting for the command. Returns whether
    this call expired it. Raises :class:`~secrets_admin.audit.AuditUnavailable`."""
    now = now or timezone.now()
    cr = ChangeRequest.objects.filter(pk=request_id).first()
    if cr is None or cr.status not in (Status.OPEN, Status.APPROVED) or cr.applied_version:
        return False
    due = cr.expires_at <= now or (cr.status == Status.APPROVED and approved_deadline(cr) <= now)
    return due and _expire(cr, now)


def _expire(cr: ChangeRequest, now: datetime) -> bool:
    """Move ``cr`` from the status it was read with to ``expired`` (``False`` when it was
    decided meanwhile), record ``change_request_expire`` as the portal itself, remove its
    ``CR-<id>`` label and tell its author."""
    claimed = ChangeRequest.objects.filter(pk=cr.pk, status=cr.status).update(
        status=Status.EXPIRED, updated=now
    )
    if not claimed:
        return False
    cr.status = Status.EXPIRED
    audit.record(
        audit.AuditAction.CHANGE_REQUEST_EXPIRE,
        context=audit.Context.system("change_requests_expire"),
        secret=cr.secret,
        change_request=cr.pk,
        new_version=cr.staged_version,
    )
    drop_label(cr)
    notifications.author_told(cr, "expired")
    return True
