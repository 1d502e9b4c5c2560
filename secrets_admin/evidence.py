"""Evidence packs: everything an auditor needs about one change request, in one JSON file that
is checked offline (README "Audit you can prove").

A pack holds the request as proposed (cells by name with fingerprints, never values), its
votes, its outcome and version ids, the audit events that name it, and the *chain proofs*: for
each of its events, every event from it up to the first signed anchor at or after it, so each
hash can be recomputed and linked to an anchor. The anchor is signed with the portal's
Ed25519 key; the pack carries the public key and is itself signed with the same key.

:func:`verify_pack` needs no database and no secret: it checks that the file is in canonical
form (so any changed byte is either a changed value or a form that is refused), the pack's
signature, the chain from the first event to the anchor, the anchor's signature, and that the
request's events and votes are in the chain. Compare the public key's fingerprint with the one
on the portal's chain check page (or pass it with ``--public-key``): a forger with their own key
could sign a pack, never one under the portal's key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from . import audit, audit_anchors, audit_export
from .models import AuditChainHead, AuditEvent, ChangeRequest

#: The ``format`` of a pack; part of what is signed.
PACK_FORMAT = "secrets-portal.evidence-pack/1"

_REQUEST_FIELDS = (
    "id",
    "secret",
    "environments",
    "status",
    "base_version",
    "staged_version",
    "applied_version",
    "label",
    "change_id",
    "cells",
    "author_username",
    "author_email",
    "author_name",
    "created",
    "required_approvals",
    "expires_at",
    "comment",
    "outcome_message",
    "bypass_reason",
    "bypass_acknowledged_at",
)


class EvidenceError(Exception):
    """A pack could not be built (no such request, no events) or does not verify."""


def _iso(value: Any) -> Any:
    return audit.utc_iso(value) if hasattr(value, "astimezone") else value


def _request_record(cr: ChangeRequest) -> dict[str, Any]:
    record = {name: _iso(getattr(cr, name)) for name in _REQUEST_FIELDS}
    record["votes"] = [
        {
            "approver_username": vote.approver_username,
            "decision": vote.decision,
            "comment": vote.comment,
            "created": _iso(vote.created),
        }
        for vote in cr.approvals.all()
    ]
    return record


def _chain(first: int, last: int) -> list[dict[str, Any]]:
    events = AuditEvent.objects.filter(seq__gte=first, seq__lte=last)
    return [json.loads(line) for line in audit_export.export_jsonl(events)]


def _proofs(seqs: list[int]) -> list[dict[str, Any]]:
    """One proof per anchor: the events from the request's first event not yet covered up to
    the first valid anchor at or after it, so a request that lived for days carries the
    events around its own, not everything in between."""
    key = audit_anchors.signing_key().public_key()
    sink = audit_anchors.anchor_sink()
    stored = sink.read_anchors(from_seq=seqs[0]).anchors if sink else []
    anchors = sorted((a for a in stored if a.valid_under(key)), key=lambda a: a.seq)
    proofs: list[dict[str, Any]] = []
    i = 0
    while i < len(seqs):
        start = seqs[i]
        anchor = next((a for a in anchors if a.seq >= start), None) or audit_anchors.anchor_now()
        if anchor is None:  # no anchor sink: the head, signed here and stored nowhere else
            head = AuditChainHead.objects.get(pk=1)
            anchor = audit_anchors.sign_anchor(head.seq, head.hash)
        proofs.append(
            {
                "anchor": {**anchor.as_json(), "where": anchor.where},
                "chain": _chain(start, anchor.seq),
            }
        )
        while i < len(seqs) and seqs[i] <= anchor.seq:
            i += 1
    return proofs


def build(request_id: int) -> bytes:
    """The evidence pack of change request ``request_id`` as the exact bytes of its file.

    Each of the request's events is proven by a chain from it to the first signed anchor at
    or after it (:func:`_proofs`); when no anchor covers the last ones yet, one is written now
    (with an anchor sink), else the head is signed in place (``where`` is empty then: the
    statement was never stored outside the database). Raises :class:`EvidenceError` when the
    request does not exist or no event names it, and ``ClientError``/``BotoCoreError`` when
    the anchor sink cannot be read or written.
    """
    cr = ChangeRequest.objects.filter(pk=request_id).prefetch_related("approvals").first()
    if cr is None:
        raise EvidenceError(f"there is no change request #{request_id}")
    seqs = sorted(AuditEvent.objects.filter(change_request=cr.pk).values_list("seq", flat=True))
    if not seqs:
        raise EvidenceError(f"no audit event names change request #{request_id}")
    pack: dict[str, Any] = {
        "format": PACK_FORMAT,
        "generated": audit.utc_iso(timezone.now()),
        "change_request": _request_record(cr),
        "versions": {
            "base": cr.base_version,
            "staged": cr.staged_version,
            "applied": cr.applied_version,
        },
        "events": seqs,
        "proofs": _proofs(seqs),
        "public_key": audit_anchors.public_key_text(),
    }
    pack["signature"] = audit_anchors.sign(_signed_part(pack))
    return audit_anchors.canonical_json(pack) + b"\n"


def _signed_part(pack: dict[str, Any]) -> bytes:
    return audit_anchors.canonical_json({k: v for k, v in pack.items() if k != "signature"})


@dataclass(frozen=True)
class PackReport:
    """A verified pack: the request, its events, the anchors that prove them (``seq`` and
    where each is stored, ``""`` when signed at export) and the key's fingerprint."""

    request_id: int
    events: int
    anchors: list[tuple[int, str]]
    fingerprint: str


def _problems(data: bytes, trusted_key: str | None) -> Iterator[str]:
    """The first reason the pack is not genuine, the most basic first."""
    try:
        pack = json.loads(data)
    except ValueError:
        yield "the file is not JSON (it was damaged or altered)"
        return
    if not isinstance(pack, dict) or pack.get("format") != PACK_FORMAT:
        yield "the file is not an evidence pack of this format"
        return
    if audit_anchors.canonical_json(pack) + b"\n" != data:
        yield "the file is not in the canonical form it was written in (it was altered)"
        return
    try:
        key = audit_anchors.load_public_key(str(pack.get("public_key", "")))
    except ValueError:
        yield "the pack's public key is not an Ed25519 key"
        return
    if trusted_key is not None and pack["public_key"] != trusted_key:
        yield "the pack is signed by another key than the one given as the portal's"
        return
    if not audit_anchors.signature_valid(key, str(pack.get("signature", "")), _signed_part(pack)):
        yield "the pack's signature does not match its content (it was altered)"
        return
    proven: dict[int, dict[str, Any]] = {}
    for proof in pack.get("proofs") or [None]:
        problem = _proof_problem(proof, key, proven)
        if problem:
            yield problem
            return
    yield from _request_problems(pack, proven)


def _proof_problem(proof: Any, key: Any, proven: dict[int, dict[str, Any]]) -> str:
    """What is wrong with one proof (``""``: nothing); its events go into ``proven``."""
    try:
        anchor = audit_anchors.Anchor.from_json(proof["anchor"])
    except (KeyError, TypeError, ValueError):
        return "a proof holds no signed anchor"
    if not anchor.valid_under(key):
        return f"the anchor of event #{anchor.seq} is not signed by the pack's key (forged)"
    chain = proof.get("chain")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], dict):
        return f"the proof up to the anchor of event #{anchor.seq} holds no chain"
    expected, prev = chain[0].get("seq"), None
    for record in chain:
        try:
            seq, digest = record["seq"], record["hash"]
            recomputed = audit.compute_hash(record)
        except (KeyError, TypeError, AttributeError):
            return f"the chain record after #{expected} is not an audit event"
        if seq != expected:
            return f"event #{expected} is missing from the chain proof"
        if prev is not None and record["prev_hash"] != prev:
            return f"event #{seq} does not follow event #{seq - 1}"
        if recomputed != digest:
            return f"event #{seq} does not match its hash (it was altered)"
        proven[seq] = record
        prev, expected = digest, expected + 1
    if chain[-1]["seq"] != anchor.seq or chain[-1]["hash"] != anchor.hash:
        return f"a chain proof ends at event #{chain[-1]['seq']}, not at its anchored event"
    return ""


def _request_problems(pack: dict[str, Any], proven: dict[int, dict[str, Any]]) -> Iterator[str]:
    request = pack.get("change_request") or {}
    events = []
    for seq in pack.get("events") or []:
        record = proven.get(seq)
        if record is None or record.get("change_request") != request.get("id"):
            yield f"event #{seq} is not a proven event of change request #{request.get('id')}"
            return
        events.append(record)
    for vote in request.get("votes") or []:
        action = f"change_request_{vote.get('decision')}"
        if not any(
            e["action"] == action and e["actor_username"] == vote.get("approver_username")
            for e in events
        ):
            yield f"the vote of {vote.get('approver_username')} has no audit event in the chain"
            return


def verify_pack(data: bytes, *, trusted_key: str | None = None) -> PackReport:
    """Check an evidence pack offline (no database, no secret).

    ``trusted_key`` is the portal's public key (base64 raw) when the caller has it. Raises
    :class:`EvidenceError` with the first problem found: damaged or altered bytes, a bad
    signature, a broken chain, a forged anchor, an event or vote of the request missing.
    """
    for problem in _problems(data, trusted_key):
        raise EvidenceError(problem)
    pack = json.loads(data)
    return PackReport(
        request_id=int(pack["change_request"]["id"]),
        events=len(pack["events"]),
        anchors=[
            (int(p["anchor"]["seq"]), str(p["anchor"].get("where", ""))) for p in pack["proofs"]
        ],
        fingerprint=audit_anchors.key_fingerprint(pack["public_key"]),
    )


def filename(request_id: int) -> str:
    """The pack's download name."""
    return f"evidence-change-request-{request_id}.json"
