"""Reconciling the audit log with Secrets Manager (``manage.py audit_reconcile``):

* :func:`reconcile` settles attempts left without an outcome (the process died between the
  attempt and its outcome) by asking Secrets Manager where the attempt's new version is;
* :func:`versions_outside_portal` tells which versions of a secret no event accounts for
  (written with the console, the CLI or another tool).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import models
from django.db.models import QuerySet
from django.utils import timezone

from . import audit, aws
from .audit import AuditAction, Outcome
from .models import AuditEvent

# --------------------------------------------------------------------------------------------
# Settling attempts left without an outcome


@dataclass(frozen=True)
class Settlement:
    """What :func:`reconcile` decided for one attempt. ``outcome`` is ``None`` when it could
    not decide (the attempt stays open); ``reason`` says why, in a sentence."""

    attempt: int
    action: str
    secret: str
    new_version: str
    outcome: Outcome | None
    reason: str
    stages: tuple[str, ...] = ()


def unsettled_attempts(*, older_than: timedelta) -> QuerySet[AuditEvent]:
    """``attempted`` events older than ``older_than`` that no outcome event points at."""
    settled = AuditEvent.objects.filter(attempt=models.OuterRef("seq"))
    return (
        AuditEvent.objects.filter(
            outcome=Outcome.ATTEMPTED, created__lte=timezone.now() - older_than
        )
        .exclude(models.Exists(settled))
        .order_by("seq")
    )


def _decide(event: AuditEvent) -> Settlement:
    def settle(outcome: Outcome | None, reason: str, stages: Iterable[str] = ()) -> Settlement:
        return Settlement(
            event.seq, event.action, event.secret, event.new_version, outcome, reason, tuple(stages)
        )

    if event.action == AuditAction.REVEAL:
        # audit.attempt() records the outcome before returning the value, so none was returned.
        return settle(Outcome.FAILED, "no outcome was recorded, so the value was not returned")
    if not (event.secret and event.new_version):
        return settle(None, "the attempt names no secret and new version to look up")
    try:
        stages = aws.version_stages(event.secret, event.new_version)
    except aws.AwsError as exc:
        return settle(None, f"Secrets Manager could not be asked: {exc.message}")
    if stages is None:
        return settle(Outcome.FAILED, "the new version never reached Secrets Manager")
    if aws.CURRENT in stages:
        return settle(Outcome.SUCCEEDED, "the new version holds AWSCURRENT", stages)
    if aws.PREVIOUS in stages:
        return settle(
            Outcome.SUCCEEDED,
            "the new version held AWSCURRENT and was since replaced (it holds AWSPREVIOUS)",
            stages,
        )
    if AuditEvent.objects.filter(
        secret=event.secret, base_version=event.new_version, seq__gt=event.seq
    ).exists():
        return settle(Outcome.SUCCEEDED, "a later change was based on the new version", stages)
    return settle(Outcome.FAILED, "the new version exists but never held AWSCURRENT", stages)


#: What an outcome settled by :func:`reconcile` copies from its attempt: who and what
#: (``actor_username`` .. ``change_request`` in :data:`audit.HASHED_FIELDS`) and the user link.
_COPIED_ON_SETTLE = (
    "actor_id",
    *audit.HASHED_FIELDS[
        audit.HASHED_FIELDS.index("actor_username") : audit.HASHED_FIELDS.index("change_request")
        + 1
    ],
)


def reconcile(
    *, older_than: timedelta = timedelta(minutes=15), dry_run: bool = False
) -> list[Settlement]:
    """Settle every attempt older than ``older_than`` that has no outcome.

    A write's outcome comes from ``DescribeSecret``: its ``new_version`` holding
    ``AWSCURRENT`` (or ``AWSPREVIOUS``, or being the base of a later change) means succeeded;
    absent or never promoted means failed. A reveal without outcome returned no value, so it
    failed. The outcome event keeps the original actor and says ``settled_by`` in ``detail``.
    ``older_than`` leaves attempts that may still be in flight alone. Two reconcilers at once
    never settle an attempt twice (checked under the chain lock). Unless ``dry_run``, one
    ``audit_reconcile`` event sums up the run when it settled anything. Raises
    :class:`~secrets_admin.audit.AuditUnavailable` when an event cannot be appended.
    """
    results = []
    for event in unsettled_attempts(older_than=older_than).iterator(chunk_size=500):
        decision = _decide(event)
        results.append(decision)
        if dry_run or decision.outcome is None:
            continue
        copied = {name: getattr(event, name) for name in _COPIED_ON_SETTLE}
        audit.settle(
            event.action,
            decision.outcome,
            attempt=event.seq,
            **copied,
            error_code="" if decision.outcome == Outcome.SUCCEEDED else "Reconciled",
            detail={
                "settled_by": "audit_reconcile",
                "reason": decision.reason,
                "stages": list(decision.stages),
            },
        )
    settled = [r for r in results if r.outcome is not None]
    if settled and not dry_run:
        audit.record(
            AuditAction.AUDIT_RECONCILE,
            context=audit.Context.system("audit_reconcile"),
            detail={
                "settled": len(settled),
                "undecided": len(results) - len(settled),
                "attempts": [r.attempt for r in settled][:100],
            },
        )
    return results


# --------------------------------------------------------------------------------------------
# Changes made outside the portal


def versions_outside_portal(name: str, version_ids: Iterable[str]) -> set[str]:
    """The versions of secret ``name``, among ``version_ids``, that no audit event accounts
    for: no event names them as its ``new_version``. Those were written by someone using the
    console, the CLI or another tool ("changed outside the portal").

    Every event that names a version accounts for it, whatever its outcome: a version staged
    by a save that then conflicted was still made by the portal. One query.
    """
    wanted = set(version_ids)
    if not wanted:
        return set()
    known = AuditEvent.objects.filter(secret=name, new_version__in=wanted).values_list(
        "new_version", flat=True
    )
    return wanted - set(known)
