"""Evidence packs: everything an auditor needs about one change request, in one JSON file that
is checked offline (README "Audit you can prove").

A pack holds the request as proposed (cells by name with fingerprints, never values), its
votes, its outcome and version ids, the audit events that name it, and the *chain proof*: every
event from the request's first one up to the first signed anchor at or after its last one, so
each hash can be recomputed and linked to the anchor. The anchor is signed with the portal's
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

from . import audit, audit_devices
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
    return audit._iso(value) if hasattr(value, "astimezone") else value


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
    return [json.loads(line) for line in audit.export_jsonl(events)]


def build(request_id: int) -> bytes:
    """The evidence pack of change request ``request_id`` as the exact bytes of its file.

    The chain proof ends at the first signed anchor at or after the request's last event; when
    none exists yet one is written now (with an anchor sink), else the head is signed in place
    (``anchor.where`` is empty then: the statement was never stored outside the database).
    Raises :class:`EvidenceError` when the request does not exist or no event names it, and
    ``ClientError``/``BotoCoreError`` when the anchor sink cannot be read or written.
    """
    cr = ChangeRequest.objects.filter(pk=request_id).prefetch_related("approvals").first()
    if cr is None:
        raise EvidenceError(f"there is no change request #{request_id}")
    seqs = sorted(AuditEvent.objects.filter(change_request=cr.pk).values_list("seq", flat=True))
    if not seqs:
        raise EvidenceError(f"no audit event names change request #{request_id}")
    anchor = audit_devices.latest_anchor_at_or_after(seqs[-1]) or audit_devices.anchor_now()
    if anchor is None:
        head = AuditChainHead.objects.get(pk=1)
        anchor = audit_devices.sign_anchor(head.seq, head.hash)
    pack: dict[str, Any] = {
        "format": PACK_FORMAT,
        "generated": audit._iso(timezone.now()),
        "change_request": _request_record(cr),
        "versions": {
            "base": cr.base_version,
            "staged": cr.staged_version,
            "applied": cr.applied_version,
        },
        "events": seqs,
        "chain": _chain(seqs[0], anchor.seq),
        "anchor": {**anchor.as_json(), "where": anchor.where},
        "public_key": audit_devices.public_key_text(),
    }
    pack["signature"] = audit_devices.sign(_signed_part(pack))
    return audit_devices.canonical_json(pack) + b"\n"


def _signed_part(pack: dict[str, Any]) -> bytes:
    return audit_devices.canonical_json({k: v for k, v in pack.items() if k != "signature"})


@dataclass(frozen=True)
class PackReport:
    """A verified pack: the request, the events proven, the anchor and the key fingerprint."""

    request_id: int
    events: int
    chain_from: int
    anchor_seq: int
    anchor_time: str
    anchor_where: str
    fingerprint: str


def _problems(data: bytes, trusted_key: str | None) -> Iterator[str]:
    """Every reason the pack is not genuine, first the most basic (stops at the first)."""
    try:
        pack = json.loads(data)
    except ValueError:
        yield "the file is not JSON (it was damaged or altered)"
        return
    if not isinstance(pack, dict) or pack.get("format") != PACK_FORMAT:
        yield "the file is not an evidence pack of this format"
        return
    if audit_devices.canonical_json(pack) + b"\n" != data:
        yield "the file is not in the canonical form it was written in (it was altered)"
        return
    try:
        key = audit_devices.load_public_key(str(pack.get("public_key", "")))
    except ValueError:
        yield "the pack's public key is not an Ed25519 key"
        return
    if trusted_key is not None and pack["public_key"] != trusted_key:
        yield "the pack is signed by another key than the one given as the portal's"
        return
    if not audit_devices.signature_valid(key, str(pack.get("signature", "")), _signed_part(pack)):
        yield "the pack's signature does not match its content (it was altered)"
        return
    yield from _chain_problems(pack, key)


def _chain_problems(pack: dict[str, Any], key: Any) -> Iterator[str]:
    try:
        anchor = audit_devices.Anchor.from_json(pack["anchor"])
    except (KeyError, ValueError):
        yield "the pack holds no signed anchor"
        return
    if not anchor.valid_under(key):
        yield f"the anchor of event #{anchor.seq} is not signed by the pack's key (forged)"
        return
    chain = pack.get("chain")
    if not isinstance(chain, list) or not chain:
        yield "the pack holds no chain"
        return
    expected = chain[0].get("seq") if isinstance(chain[0], dict) else None
    prev = None
    for record in chain:
        try:
            seq, digest = record["seq"], record["hash"]
            recomputed = audit.compute_hash(record)
        except (KeyError, TypeError, AttributeError):
            yield f"the chain record after #{expected} is not an audit event"
            return
        if seq != expected:
            yield f"event #{expected} is missing from the chain proof"
            return
        if prev is not None and record["prev_hash"] != prev:
            yield f"event #{seq} does not follow event #{seq - 1}"
            return
        if recomputed != digest:
            yield f"event #{seq} does not match its hash (it was altered)"
            return
        prev, expected = digest, expected + 1
    last = chain[-1]
    if last["seq"] != anchor.seq or last["hash"] != anchor.hash:
        yield f"the chain proof ends at event #{last['seq']}, not at the anchored event"
        return
    by_seq = {r["seq"]: r for r in chain}
    request = pack.get("change_request") or {}
    for seq in pack.get("events") or []:
        if seq not in by_seq or by_seq[seq].get("change_request") != request.get("id"):
            yield f"event #{seq} is not an event of change request #{request.get('id')}"
            return
    events = [by_seq[s] for s in pack.get("events") or []]
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
    anchor = pack["anchor"]
    return PackReport(
        request_id=int(pack["change_request"]["id"]),
        events=len(pack["events"]),
        chain_from=int(pack["chain"][0]["seq"]),
        anchor_seq=int(anchor["seq"]),
        anchor_time=str(anchor["time"]),
        anchor_where=str(anchor.get("where", "")),
        fingerprint=audit_devices.key_fingerprint(pack["public_key"]),
    )


def filename(request_id: int) -> str:
    """The pack's download name."""
    return f"evidence-change-request-{request_id}.json"
