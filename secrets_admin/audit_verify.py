"""Verifying the audit log's hash chain (``manage.py audit_verify``, the auditor's chain check):
:func:`verify` walks the chain in ``seq`` order and names the first event that does not match.

The chain alone catches an edited, deleted, inserted or moved event; a history rewritten with
recomputed hashes, or cut at its end, is caught against signed anchors kept outside the database
(``audit_anchors.verify_with_anchors`` passes them in) or a head passed by hand
(``manage.py audit_verify --anchor``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from . import audit
from .models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class VerifyResult:
    """``ok`` or the first bad event: ``first_bad_seq`` and a sentence saying what is wrong.
    ``head_seq``/``head_hash`` name the chain's end (record them elsewhere as an anchor)."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    head_seq: int = 0
    head_hash: str = ""
    #: Anchors checked against the chain, and the newest one's ``seq`` (0: none).
    anchors: int = 0
    anchored_seq: int = 0
    #: Why the anchors could not be checked (the sink could not be read), else empty.
    anchor_problem: str = ""

    def as_detail(self) -> dict[str, Any]:
        """What an ``audit_verify`` event records of this check."""
        return {
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "head": f"{self.head_seq}:{self.head_hash}",
            "anchors": self.anchors,
            "anchored_seq": self.anchored_seq,
            "anchor_problem": self.anchor_problem,
        }


def verify(
    *,
    anchor: tuple[int, str] | None = None,
    anchors: Iterable[tuple[int, str]] = (),
    batch: int = 2000,
) -> VerifyResult:
    """Walk the chain in ``seq`` order up to its head and report the first event that does
    not match.

    Detects an edited event (its hash no longer matches its content), a deleted one (a gap in
    ``seq``, or the head naming an event that is gone), an inserted or moved one (a
    ``prev_hash`` naming another event), an event added beyond the head without the lock.
    Against ``anchors`` (``(seq, hash)`` pairs: signed anchors read by
    ``audit_anchors.verify_with_anchors``, or ``anchor`` taken by hand from an earlier run) it
    also detects a history rewritten with recomputed hashes (an anchored event's hash differs)
    and a truncated log (the chain ends before an anchored event). An insertion whose forger
    also computed correct hashes is reported at the first event after it, the first place the
    chain breaks. Reads ``batch`` rows at a time (constant memory); events appended while it
    runs are left for the next run.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq = head.seq if head else 0
    head_hash = (head.hash if head else "") or audit.GENESIS
    anchored: dict[int, set[str]] = {}
    for seq, digest in [*anchors, *([anchor] if anchor else [])]:
        anchored.setdefault(seq, set()).add(digest)
    anchor_seqs = sorted(anchored)
    n_anchors = sum(len(v) for v in anchored.values())
    anchored_seq = max(anchored, default=0)

    def bad(seq: int, problem: str, checked: int) -> VerifyResult:
        return VerifyResult(
            False, checked, seq, problem, head_seq, head_hash, n_anchors, anchored_seq
        )

    def missing(seq: int) -> str:
        before = [a for a in anchor_seqs if a < seq]
        after = [a for a in anchor_seqs if a >= seq]
        where = ""
        if after:
            where = (
                f" (between the anchors of events #{before[-1]} and #{after[0]})"
                if before
                else f" (before the anchor of event #{after[0]})"
            )
        return f"event #{seq} is missing (deleted){where}"

    def last_good_anchor(seq: int) -> str:
        before = [a for a in anchor_seqs if a < seq]
        return (
            f"after event #{before[-1]}, the last anchor that matches"
            if before
            else "from the start"
        )

    prev_hash, expected = audit.GENESIS, 1
    while expected <= head_seq:
        # Plain tuples, not model instances: the walk costs half as much.
        rows = (
            AuditEvent.objects.filter(seq__gte=expected, seq__lte=head_seq)
            .order_by("seq")
            .values_list(*audit.EXPORT_FIELDS)[:batch]
        )
        events = [dict(zip(audit.EXPORT_FIELDS, row, strict=True)) for row in rows]
        if not events:
            return bad(expected, missing(expected), expected - 1)
        for event in events:
            seq = event["seq"]
            if seq != expected:
                return bad(expected, missing(expected), expected - 1)
            if event["prev_hash"] != prev_hash:
                return bad(
                    seq,
                    f"event #{seq} does not follow event #{seq - 1}: a row was "
                    "deleted, inserted or moved between them",
                    expected - 1,
                )
            if audit.compute_hash(event) != event["hash"]:
                return bad(seq, f"event #{seq} was altered after it was written", expected - 1)
            if seq in anchored and anchored[seq] != {event["hash"]}:
                return bad(
                    seq,
                    f"event #{seq} no longer has the hash recorded in its anchor: the history "
                    f"was rewritten ({last_good_anchor(seq)}) and its hashes recomputed",
                    expected - 1,
                )
            prev_hash = event["hash"]
            expected += 1
    checked = expected - 1
    if head is None and AuditEvent.objects.exists():
        return bad(1, "the chain head row is missing", checked)
    if prev_hash != head_hash:
        return bad(
            head_seq, f"the chain head does not match event #{head_seq} (the head was altered)", 0
        )
    if anchor_seqs and anchor_seqs[-1] > head_seq:
        return bad(
            head_seq + 1,
            f"the log ends at event #{head_seq} but event #{anchor_seqs[-1]} was anchored: "
            f"events #{head_seq + 1} to #{anchor_seqs[-1]} at least were deleted (truncated)",
            checked,
        )
    with transaction.atomic():
        # Under the lock no append is half done, so any event past the head is foreign.
        locked = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        stray = (
            AuditEvent.objects.filter(seq__gt=locked.seq if locked else 0).order_by("seq").first()
        )
    if stray is not None:
        return bad(
            stray.seq,
            f"event #{stray.seq} lies beyond the chain head: it was inserted, not appended",
            checked,
        )
    return VerifyResult(
        True,
        checked,
        head_seq=head_seq,
        head_hash=head_hash,
        anchors=n_anchors,
        anchored_seq=anchored_seq,
    )
