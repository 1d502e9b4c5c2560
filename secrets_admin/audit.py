"""The audit log: append-only, hash-chained, fail-closed (DESIGN.md "Audit", invariant 3).

* :func:`record` appends one event. Appends are serialised on the chain head row
  (``SELECT ... FOR UPDATE`` in PostgreSQL; SQLite's single writer lock, taken at ``BEGIN
  IMMEDIATE``), so concurrent writers in several processes never fork the chain.
* :func:`attempt` wraps a change: its "attempted" event is committed *before* the body runs, so
  if the audit insert fails nothing reaches Secrets Manager; the outcome event follows.
* :func:`verify` walks the chain and names the first event that does not match.

Events never hold a value: only names, version ids and fingerprints (HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .models import AuditChainHead, AuditEvent

log = logging.getLogger(__name__)

GENESIS = "0" * 64

#: The fields covered by the hash, in order. ``hash`` itself and the actor FK are not.
HASHED_FIELDS = (
    "seq",
    "created",
    "action",
    "outcome",
    "actor_username",
    "actor_provider",
    "actor_issuer",
    "actor_subject",
    "actor_email",
    "actor_name",
    "secret",
    "environment",
    "service",
    "key",
    "fingerprint_before",
    "fingerprint_after",
    "base_version",
    "new_version",
    "change_request",
    "attempt",
    "error_code",
    "detail",
    "client_ip",
    "user_agent",
    "request_id",
    "prev_hash",
)


class AuditUnavailable(Exception):
    """The audit event could not be recorded, so the change or reveal was refused (fail closed)."""

    message = (
        "The audit log could not record this action, so it was not carried out. "
        "Nothing was changed or revealed. Try again; if it persists, tell the portal's operators "
        "(the database may be unavailable)."
    )

    def __init__(self) -> None:
        super().__init__(self.message)


def canonical(event: AuditEvent) -> bytes:
    """The canonical serialisation hashed for ``event``: sorted-key JSON of :data:`HASHED_FIELDS`."""
    data: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = getattr(event, name)
        if name == "created":
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        data[name] = value
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_hash(event: AuditEvent) -> str:
    """``SHA-256(prev_hash || canonical(event))`` in hex."""
    return hashlib.sha256(event.prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


# --------------------------------------------------------------------------------------------
# Who and where


@dataclass
class Context:
    """Who acts and from where; built from a request (or by hand in commands)."""

    user: Any = None
    client_ip: str = ""
    user_agent: str = ""
    request_id: str = ""
    extra_actor: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request: HttpRequest) -> Context:
        return cls(
            user=request.user if request.user.is_authenticated else None,
            client_ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
            request_id=getattr(request, "request_id", ""),
        )

    def actor_fields(self) -> dict[str, Any]:
        user = self.user
        fields: dict[str, Any] = {}
        if user is not None:
            fields = {
                "actor": user,
                "actor_username": user.get_username(),
                "actor_email": getattr(user, "email", "") or "",
                "actor_name": (user.get_full_name() if hasattr(user, "get_full_name") else "")
                or "",
            }
            fields.update(identity_of(user))
        fields.update(self.extra_actor)
        return fields


def identity_of(user: Any) -> dict[str, str]:
    """The SSO identity of a user: provider, issuer and subject of their newest social account
    (issuer: OIDC ``iss`` or the SAML IdP's entity id).

    Local (demo) users get provider ``local`` and their username as subject.
    """
    try:
        from allauth.socialaccount.models import SocialAccount
    except ImportError:  # pragma: no cover - allauth is a dependency
        SocialAccount = None
    if SocialAccount is not None and user.pk:
        account = SocialAccount.objects.filter(user=user).order_by("-last_login").first()
        if account is not None:
            data = account.extra_data or {}
            id_token = data.get("id_token") or {}
            # Stamped at each SSO sign-in (adapters.issuer_of); older rows: the ID token's iss.
            issuer = str(data.get("portal_issuer") or "")
            if not issuer and isinstance(id_token, dict):
                issuer = str(id_token.get("iss", ""))
            return {
                "actor_provider": account.provider,
                "actor_issuer": issuer,
                "actor_subject": account.uid,
            }
    return {"actor_provider": "local", "actor_issuer": "", "actor_subject": user.get_username()}


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR`` (a proxy in front should set it, e.g. gunicorn's
    ``--forwarded-allow-ips``; we do not trust ``X-Forwarded-For`` from the client)."""
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


# --------------------------------------------------------------------------------------------
# Appending


def record(action: str, *, context: Context | None = None, **fields: Any) -> AuditEvent:
    """Append one event and commit it; return it.

    ``fields`` are :class:`AuditEvent` fields (``secret``, ``environment``, ``outcome``,
    ``detail`` ...). Never pass a value. Raises :class:`AuditUnavailable` when the event cannot
    be committed; the caller must then not perform the action.
    """
    context = context or Context()
    try:
        with transaction.atomic():
            head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
            event = AuditEvent(
                seq=head.seq + 1,
                created=timezone.now(),
                action=action,
                prev_hash=head.hash or GENESIS,
                client_ip=context.client_ip,
                user_agent=context.user_agent,
                request_id=context.request_id,
                **context.actor_fields(),
                **fields,
            )
            event.hash = compute_hash(event)
            event.save(force_insert=True)
            head.seq = event.seq
            head.hash = event.hash
            head.save(update_fields=["seq", "hash"])
    except Exception as exc:
        log.error(
            "audit append failed for action=%s: %s", action, type(exc).__name__, exc_info=True
        )
        raise AuditUnavailable() from None
    return event


class Attempt:
    """Handle given to the body of :func:`attempt`: set ``outcome`` fields before leaving."""

    def __init__(self, event: AuditEvent) -> None:
        self.event = event
        self.outcome_fields: dict[str, Any] = {}
        self.outcome_action = ""

    def succeeded(self, **fields: Any) -> None:
        self.outcome_action, self.outcome_fields = "succeeded", fields

    def failed(self, **fields: Any) -> None:
        self.outcome_action, self.outcome_fields = "failed", fields

    def conflicted(self, **fields: Any) -> None:
        self.outcome_action, self.outcome_fields = "conflicted", fields


@contextmanager
def attempt(action: str, *, context: Context | None = None, **fields: Any) -> Iterator[Attempt]:
    """Record ``<action>.attempted`` (committed) before the body, and the outcome after it.

    The body calls ``succeeded()``, ``failed()`` or ``conflicted()`` on the handle; an exception
    escaping the body records ``failed`` with its ``code`` (when it has one) and re-raises.
    Raises :class:`AuditUnavailable` *before* the body runs when the attempt cannot be recorded.
    """
    event = record(f"{action}.attempted", context=context, outcome="attempted", **fields)
    handle = Attempt(event)
    base = {k: v for k, v in fields.items() if k != "detail"}
    try:
        yield handle
    except Exception as exc:
        record(
            f"{action}.failed",
            context=context,
            outcome="failed",
            attempt=event.seq,
            error_code=str(getattr(exc, "code", "") or type(exc).__name__)[:100],
            **base,
        )
        raise
    outcome = handle.outcome_action or "succeeded"
    merged = {**base, **handle.outcome_fields}
    record(f"{action}.{outcome}", context=context, outcome=outcome, attempt=event.seq, **merged)


# --------------------------------------------------------------------------------------------
# Verifying


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def verify(*, batch: int = 2000) -> VerifyResult:
    """Walk the chain in ``seq`` order and report the first event that does not match.

    Detects an edited row (its hash no longer matches), a deleted row (a gap in ``seq`` or a
    ``prev_hash`` that names another event), an inserted row and reordered rows, and a chain
    cut short at its end (the head row names a later event). Reads in batches (constant memory).
    """
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    last_id = 0
    while True:
        rows = list(AuditEvent.objects.filter(seq__gte=expected_seq).order_by("seq")[:batch])
        if not rows:
            break
        for event in rows:
            if event.seq != expected_seq:
                return VerifyResult(
                    False, checked, event.seq, f"event #{expected_seq} is missing (deleted?)"
                )
            if event.prev_hash != prev_hash:
                return VerifyResult(
                    False,
                    checked,
                    event.seq,
                    f"event #{event.seq} does not follow event #{event.seq - 1} "
                    "(a row was deleted, inserted or moved)",
                )
            if compute_hash(event) != event.hash:
                return VerifyResult(
                    False,
                    checked,
                    event.seq,
                    f"event #{event.seq} was altered after it was written",
                )
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
            last_id = event.seq
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != last_id or (head.hash or GENESIS) != prev_hash):
        return VerifyResult(
            False,
            checked,
            last_id + 1,
            f"the chain ends at event #{last_id} but its head names event #{head.seq} "
            "(events at the end were deleted)",
        )
    return VerifyResult(True, checked)
