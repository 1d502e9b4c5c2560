"""The audit log: append-only, hash-chained, fail-closed (ASVS 5.0 V16, "Security Logging and
Error Handling").

* :func:`record` appends one event. Appends are serialised on the chain head row
  (``SELECT ... FOR UPDATE`` in PostgreSQL; SQLite's single writer lock, taken at ``BEGIN
  IMMEDIATE``), so concurrent writers in several processes never fork the chain.
* :func:`attempt` wraps a change: its ``attempted`` event is committed *before* the body runs,
  so if the audit insert fails nothing reaches Secrets Manager; the outcome follows.
* :func:`record_reveal` commits a reveal's one event before the value is sent.
* :func:`verify` walks the chain and names the first event that does not match.
* :func:`reconcile` settles attempts left without an outcome by asking Secrets Manager.
* :func:`versions_outside_portal` tells which versions of a secret no event accounts for.
* :class:`EventFilter`, :func:`export_csv` and :func:`export_jsonl` serve the auditor's views.

An event is an :class:`AuditAction` (what) with an :class:`Outcome` (how it ended): a failed
sign-in is ``(sign_in, failed)``, a save is ``(save, attempted)`` then ``(save, succeeded)``.
Events never hold a value: only names, version ids and fingerprints (HMAC-SHA256).

The chain is plain SHA-256, so anyone holding an export can check it without a key; the price is
that someone able to rewrite the database could recompute every hash after the row they changed.
Signed anchors kept outside the database catch that (``audit_devices``: the head, signed with
Ed25519, in an Object-Lock S3 bucket or CloudWatch Logs), as does a head passed by hand with
``manage.py audit_verify --anchor``. Each appended event also goes to the outbox in the same
transaction, for the audit devices to ship (``audit_devices.ship``).
"""

from __future__ import annotations

import csv
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from . import aws, errors
from .models import AuditChainHead, AuditEvent, AuditOutbox

log = logging.getLogger(__name__)

GENESIS = "0" * 64


class AuditAction(enum.StrEnum):
    """Every action the log records. The one list of names: :func:`record`
    refuses any other. Names follow the business actions (``<entity>_<action>``)."""

    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    REVEAL = "reveal"
    SAVE = "save"
    SECRET_CREATE = "secret_create"  # noqa: S105 # nosec B105 - an action name, not a password
    SECRET_UNDELETE = "secret_undelete"  # noqa: S105 # nosec B105 - action name
    ENVIRONMENT_RESTORE = "environment_restore"
    SECRET_MIGRATE = "secret_migrate"  # noqa: S105 # nosec B105 - action name
    SECRET_DELETE_SCHEDULE = "secret_delete_schedule"  # noqa: S105 # nosec B105 - action name
    CHANGE_REQUEST_PROPOSE = "change_request_propose"
    CHANGE_REQUEST_APPROVE = "change_request_approve"
    CHANGE_REQUEST_REJECT = "change_request_reject"
    CHANGE_REQUEST_CANCEL = "change_request_cancel"
    CHANGE_REQUEST_APPLY = "change_request_apply"
    CHANGE_REQUEST_EXPIRE = "change_request_expire"
    CHANGE_REQUEST_BYPASS = "change_request_bypass"  # break-glass: applied without approval
    CHANGE_REQUEST_ACKNOWLEDGE = "change_request_acknowledge"  # a bypass reviewed by an approver
    AUDIT_EXPORT = "audit_export"
    AUDIT_VERIFY = "audit_verify"
    AUDIT_RECONCILE = "audit_reconcile"
    # A response told whether typed values equal stored ones (review, "no changes", conflict):
    # the cells compared, never a value; counted like a reveal.
    VALUE_COMPARE = "value_compare"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Outcome(enum.StrEnum):
    """How an action ended. One-step events (sign-in, export) are ``succeeded`` or ``failed``;
    :func:`attempt` writes ``attempted`` first and one of the others after."""

    ATTEMPTED = "attempted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CONFLICTED = "conflicted"


#: The fields covered by the hash, in order. ``hash`` itself and the ``actor`` link are not
#: (the link is cleared when a user is deleted; the copied ``actor_*`` fields are hashed).
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

#: What an export holds per event: every hashed field plus the hash, so that an export of the
#: whole log can be checked offline with :func:`canonical` (JSON Lines keeps it exact).
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")


class AuditUnavailable(errors.Unavailable):
    """The audit event could not be recorded, so the change or reveal was refused (fail closed)."""

    message = (
        "The audit log could not record this action, so it was not carried out. "
        "Nothing was changed or revealed. Try again; if it persists, tell the portal's operators "
        "(the database may be unavailable)."
    )

    def __init__(self) -> None:
        super().__init__(self.message)


class AuditDevicesBehind(AuditUnavailable):
    """The audit devices are further behind than ``PORTAL_AUDIT_MAX_LAG`` allows, so writes and
    reveals are refused until they catch up (Vault refuses requests when no audit device
    accepts them)."""

    message = (
        "The audit log cannot currently be copied outside the portal, so this action was not "
        "carried out. Nothing was changed or revealed. Try again in a few minutes; if it "
        "persists, tell the portal's operators (an audit device is unreachable)."
    )


class AuditOutcomeUnrecorded(AuditUnavailable):
    """The attempt was recorded and carried out, but its outcome could not be recorded.

    A reveal then returns nothing; a change may have reached Secrets Manager, and
    ``manage.py audit_reconcile`` settles the attempt later.
    """

    message = (
        "The audit log recorded the attempt but not its outcome. A change may have been made: "
        "reload the page to see the current version. Nothing was revealed. The operators' "
        "audit_reconcile job will record the outcome."
    )


def canonical(event: AuditEvent | Mapping[str, Any]) -> bytes:
    """The canonical serialisation hashed for an event (a model row or an export record):
    sorted-key, ASCII-only, compact JSON of :data:`HASHED_FIELDS`, ``created`` as UTC ISO-8601
    with microseconds."""
    get: Callable[[str], Any] = (
        event.__getitem__ if isinstance(event, Mapping) else lambda n: getattr(event, n)
    )
    data: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = get(name)
        if name == "created" and isinstance(value, datetime):
            value = _iso(value)
        data[name] = value
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_hash(event: AuditEvent | Mapping[str, Any]) -> str:
    """``SHA-256(prev_hash || "\\n" || canonical(event))`` in hex."""
    prev = event["prev_hash"] if isinstance(event, Mapping) else event.prev_hash
    return hashlib.sha256(prev.encode() + b"\n" + canonical(event)).hexdigest()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------------------------
# Who and where


@dataclass
class Context:
    """Who acts and from where; built from a request, or by :meth:`system` in commands."""

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
            user_agent=request.headers.get("user-agent", "")[:500],
            request_id=getattr(request, "request_id", ""),
        )

    @classmethod
    def system(cls, name: str) -> Context:
        """The portal itself acting (a management command): provider ``system``."""
        return cls(extra_actor={"actor_provider": "system", "actor_username": name})

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

    def event_fields(self) -> dict[str, Any]:
        return {
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            **self.actor_fields(),
        }


def identity_of(user: Any) -> dict[str, str]:
    """The SSO identity of a user: provider, issuer and subject of their newest social account
    (issuer: OIDC ``iss`` or the SAML IdP's entity id).

    Local (demo) users get provider ``local`` and their username as subject.
    """
    known = getattr(user, "_portal_identity", None)  # one query per request, not per event
    if isinstance(known, dict):
        return dict(known)
    identity = _identity_of(user)
    with suppress(AttributeError):  # a user object that takes no attributes
        user._portal_identity = dict(identity)
    return identity


def _identity_of(user: Any) -> dict[str, str]:
    from allauth.socialaccount.models import SocialAccount

    if user.pk:
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
    """The client's address: ``REMOTE_ADDR``, or the ``X-Forwarded-For`` hop the trusted
    proxies vouch for (``PORTAL_TRUSTED_PROXY_COUNT``, ``PORTAL_TRUSTED_PROXIES``; see
    :func:`secrets_admin.proxies.client_address`)."""
    from .proxies import client_address

    return client_address(request)[:64]


# --------------------------------------------------------------------------------------------
# Appending

_MODEL_FIELDS = {f.name: f for f in AuditEvent._meta.concrete_fields}


def _json_safe(value: Any) -> Any:
    """``detail`` as the database will give it back: floats become strings (PostgreSQL's jsonb
    rewrites ``1e20`` as an integer, which would change the hash), NUL characters (refused by
    PostgreSQL) become U+FFFD, keys become strings, tuples lists."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    return _json_safe(str(value))


def _normalise(fields: dict[str, Any]) -> dict[str, Any]:
    """Field values as they will read back from the database, so the hash computed before the
    insert is the hash :func:`verify` recomputes: text cut to its column width, ``None`` text
    as ``""``, numbers as numbers. Raises ``TypeError`` for a name that is not a field."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        model_field = _MODEL_FIELDS.get(name) or _MODEL_FIELDS.get(name.removesuffix("_id"))
        if model_field is None:
            raise TypeError(f"AuditEvent has no field {name!r}")
        if isinstance(model_field, models.CharField):
            value = "" if value is None else str(value).replace("\x00", "\ufffd")
            value = value[: model_field.max_length]
        elif isinstance(model_field, models.JSONField):
            value = _json_safe(value if value is not None else {})
        elif isinstance(model_field, models.BigIntegerField) and value is not None:
            value = int(value)
        out[name] = value
    return out


def _append(
    action: AuditAction | str,
    outcome: Outcome | str,
    context: Context | None,
    fields: dict[str, Any],
    *,
    durable: bool,
    unless_settled: int | None = None,
) -> AuditEvent | None:
    """Append one event under the chain lock. Returns ``None`` only when ``unless_settled``
    names an attempt that already has an outcome (checked under the lock)."""
    action = AuditAction(action)  # ValueError for a name not in the list: a programming error
    outcome = Outcome(outcome)
    values = _normalise(
        {**(context or Context()).event_fields(), **fields, "action": action, "outcome": outcome}
    )
    from . import audit_devices

    outbox = audit_devices.outbox_enabled()
    try:
        with transaction.atomic(durable=durable):
            head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
            if (
                unless_settled is not None
                and AuditEvent.objects.filter(attempt=unless_settled).exists()
            ):
                return None
            event = AuditEvent(
                seq=head.seq + 1, created=timezone.now(), prev_hash=head.hash or GENESIS, **values
            )
            event.hash = compute_hash(event)
            event.save(force_insert=True)
            if outbox:
                # Same transaction: the event and its delivery duty exist together or not at all.
                # An upsert: a row left by events deleted from under the chain (tampering)
                # must not make every later append fail.
                AuditOutbox.objects.bulk_create(
                    [AuditOutbox(seq=event.seq, created=event.created)],
                    update_conflicts=True,
                    unique_fields=["seq"],
                    update_fields=["created"],
                )
                transaction.on_commit(_wake_shipper)
            head.seq = event.seq
            head.hash = event.hash
            head.save(update_fields=["seq", "hash"])
    except Exception as exc:
        log.error("audit append failed for %s.%s: %s", action, outcome, type(exc).__name__)
        raise AuditUnavailable() from exc
    return event


def _wake_shipper() -> None:
    from . import audit_devices

    audit_devices.wake()


def record(
    action: AuditAction | str,
    *,
    context: Context | None = None,
    outcome: Outcome | str = Outcome.SUCCEEDED,
    **fields: Any,
) -> AuditEvent:
    """Append one event and return it.

    ``action`` must be an :class:`AuditAction` (``ValueError`` otherwise); ``fields`` are
    :class:`~secrets_admin.models.AuditEvent` fields (``secret``, ``environment``, ``key``,
    ``new_version``, ``detail`` ...; ``TypeError`` for an unknown one). Never pass a value.
    Text longer than its column is cut to fit.

    Inside the caller's transaction the event commits (or rolls back) with it, so a change
    request and its event exist together or not at all; keep such transactions short, since
    the chain lock is held until they end. Outside a transaction the event is committed on
    return. Raises :class:`AuditUnavailable` when it cannot be appended; the caller must then
    not perform the action.
    """
    event = _append(action, outcome, context, fields, durable=False)
    if event is None:  # narrowing for the type checker; cannot happen
        raise RuntimeError("unexpected: event is None (only unless_settled returns None)")
    return event


def record_reveal(
    context: Context | None,
    *,
    secret: str,
    environment: str,
    service: str,
    key: str,
    version_id: str,
    fingerprint: str = "",
    error_code: str = "",
    reason: str = "",
) -> AuditEvent:
    """Commit the one event of a reveal (a reveal is one row, committed before the value is
    sent): ``(reveal, succeeded)`` with the cell's ``fingerprint``, or ``(reveal, failed)`` with
    ``error_code`` (an AWS error code, or why the cell was not shown). ``reason``, the person's
    stated reason (asked in protected environments), goes into the chained event's ``detail``.

    The caller reads the value first and sends it only after this returns. Raises
    :class:`AuditUnavailable` when the event cannot be committed (then no value may be sent:
    fail closed), and ``RuntimeError`` inside a transaction (the event would not be committed
    on return)."""
    _require_no_transaction()
    event = _append(
        AuditAction.REVEAL,
        Outcome.FAILED if error_code else Outcome.SUCCEEDED,
        context,
        {
            "secret": secret,
            "environment": environment,
            "service": service,
            "key": key,
            "base_version": version_id,
            "fingerprint_after": fingerprint,
            "error_code": error_code,
            **({"detail": {"reason": reason}} if reason else {}),
        },
        durable=True,
    )
    if event is None:  # narrowing for the type checker; cannot happen
        raise RuntimeError("unexpected: event is None (only unless_settled returns None)")
    return event


class Attempt:
    """Handle given to the body of :func:`attempt`; the body reports how it ended."""

    def __init__(self, event: AuditEvent) -> None:
        self.event = event
        self.outcome: Outcome | None = None
        self.outcome_fields: dict[str, Any] = {}

    @property
    def seq(self) -> int:
        """The ``seq`` of the ``attempted`` event (outcome events point at it as ``attempt``)."""
        return self.event.seq

    def succeeded(self, **fields: Any) -> None:
        self.outcome, self.outcome_fields = Outcome.SUCCEEDED, fields

    def failed(self, **fields: Any) -> None:
        self.outcome, self.outcome_fields = Outcome.FAILED, fields

    def conflicted(self, **fields: Any) -> None:
        self.outcome, self.outcome_fields = Outcome.CONFLICTED, fields


def _require_no_transaction() -> None:
    connection = transaction.get_connection()
    if connection.in_atomic_block and not getattr(
        connection.atomic_blocks[-1], "_from_testcase", False
    ):
        raise RuntimeError(
            "audit.attempt() must not run inside a transaction: its 'attempted' event has to "
            "be committed before the change is made."
        )


def check_devices() -> None:
    """Fail closed when the audit devices lag too far behind (``PORTAL_AUDIT_MAX_LAG``): raises
    :class:`AuditDevicesBehind` (or :class:`AuditUnavailable` when the lag cannot be read).
    :func:`attempt` calls it; a reveal (one row, :func:`record_reveal`) calls it before reading
    the value, as Vault refuses requests when no audit device accepts them."""
    from . import audit_devices

    try:
        audit_devices.check_lag()
    except AuditUnavailable:
        raise
    except Exception as exc:
        log.error("audit lag check failed: %s", type(exc).__name__)
        raise AuditUnavailable() from exc


@contextmanager
def attempt(
    action: AuditAction | str, *, context: Context | None = None, **fields: Any
) -> Iterator[Attempt]:
    """Commit ``(action, attempted)`` before the body runs, and its outcome after it.

    The write path of every change goes through this, so no write happens unrecorded::

        with audit.attempt(AuditAction.SAVE, context=ctx, secret=name, environment=env,
                           base_version=base, new_version=token) as handle:
            ...  # PutSecretValue(ClientRequestToken=token), UpdateSecretVersionStage
            handle.succeeded(new_version=token)   # or handle.conflicted(...) / handle.failed(...)

    ``fields`` are copied to the outcome event (except ``detail``); the outcome's own fields
    are added to them. For a write, give ``new_version`` (the ``ClientRequestToken``, which
    becomes the ``VersionId``) already here: :func:`reconcile` needs it to settle an attempt
    whose process died before its outcome.

    Raises :class:`AuditUnavailable` before the body runs when the attempt cannot be committed
    (nothing must reach AWS then) or the audit devices lag more than ``PORTAL_AUDIT_MAX_LAG``
    seconds behind (:class:`AuditDevicesBehind`), and ``RuntimeError`` when called inside a
    transaction (the attempt would not be committed first). An exception escaping the body is
    recorded as ``failed`` with its ``code`` (or class name) and re-raised. A body that reports
    no outcome raises ``RuntimeError``, leaving the attempt for :func:`reconcile`. When the
    outcome itself cannot be recorded, :class:`AuditOutcomeUnrecorded` is raised (a reveal then
    returns nothing); if the body had raised, its exception is re-raised instead.
    """
    _require_no_transaction()
    check_devices()
    event = _append(action, Outcome.ATTEMPTED, context, fields, durable=True)
    if event is None:  # narrowing for the type checker; cannot happen
        raise RuntimeError("unexpected: event is None (event is set here)")
    handle = Attempt(event)
    carried = {k: v for k, v in fields.items() if k != "detail"}
    try:
        yield handle
    except Exception as exc:
        code = str(getattr(exc, "code", "") or type(exc).__name__)
        try:
            _append(
                action,
                Outcome.FAILED,
                context,
                {**carried, "attempt": event.seq, "error_code": code},
                durable=True,
            )
        except AuditUnavailable:
            log.error("the failure of attempt #%s could not be recorded", event.seq)
        raise
    if handle.outcome is None:
        raise RuntimeError(
            f"the body of audit.attempt({action!s}) reported no outcome; attempt #{event.seq} "
            "is left for audit_reconcile"
        )
    try:
        _append(
            action,
            handle.outcome,
            context,
            {**carried, **handle.outcome_fields, "attempt": event.seq},
            durable=True,
        )
    except AuditUnavailable as exc:
        raise AuditOutcomeUnrecorded() from exc.__cause__


# --------------------------------------------------------------------------------------------
# Verifying


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
    ``audit_devices.verify_with_anchors``, or ``anchor`` taken by hand from an earlier run) it
    also detects a history rewritten with recomputed hashes (an anchored event's hash differs)
    and a truncated log (the chain ends before an anchored event). An insertion whose forger
    also computed correct hashes is reported at the first event after it, the first place the
    chain breaks. Reads ``batch`` rows at a time (constant memory); events appended while it
    runs are left for the next run.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq = head.seq if head else 0
    head_hash = (head.hash if head else "") or GENESIS
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

    prev_hash, expected = GENESIS, 1
    while expected <= head_seq:
        # Plain tuples, not model instances: the walk costs half as much.
        rows = (
            AuditEvent.objects.filter(seq__gte=expected, seq__lte=head_seq)
            .order_by("seq")
            .values_list(*EXPORT_FIELDS)[:batch]
        )
        events = [dict(zip(EXPORT_FIELDS, row, strict=True)) for row in rows]
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
            if compute_hash(event) != event["hash"]:
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
        # attempt() records the outcome before returning the value, so none was returned.
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
#: (``actor_username`` .. ``change_request`` in :data:`HASHED_FIELDS`) and the user link.
_COPIED_ON_SETTLE = (
    "actor_id",
    *HASHED_FIELDS[
        HASHED_FIELDS.index("actor_username") : HASHED_FIELDS.index("change_request") + 1
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
    :class:`AuditUnavailable` when an event cannot be appended.
    """
    results = []
    for event in unsettled_attempts(older_than=older_than).iterator(chunk_size=500):
        decision = _decide(event)
        results.append(decision)
        if dry_run or decision.outcome is None:
            continue
        copied = {name: getattr(event, name) for name in _COPIED_ON_SETTLE}
        _append(
            event.action,
            decision.outcome,
            None,
            {
                **copied,
                "attempt": event.seq,
                "error_code": "" if decision.outcome == Outcome.SUCCEEDED else "Reconciled",
                "detail": {
                    "settled_by": "audit_reconcile",
                    "reason": decision.reason,
                    "stages": list(decision.stages),
                },
            },
            durable=True,
            unless_settled=event.seq,
        )
    settled = [r for r in results if r.outcome is not None]
    if settled and not dry_run:
        record(
            AuditAction.AUDIT_RECONCILE,
            context=Context.system("audit_reconcile"),
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


# --------------------------------------------------------------------------------------------
# Searching and exporting (the auditor's views)


@dataclass(frozen=True)
class EventFilter:
    """What an auditor asks for. Empty fields do not filter. ``secret`` and ``actor`` (username
    or email) match any part, case-insensitively, unless named in ``exact`` (a timeline's
    fixed secret or person, comma-separated); the other text fields match exactly;
    ``since``/``until`` are whole UTC days, both included."""

    secret: str = ""
    environment: str = ""
    service: str = ""
    key: str = ""
    actor: str = ""
    action: str = ""
    outcome: str = ""
    since: date | None = None
    until: date | None = None
    exact: str = ""

    def events(self) -> QuerySet[AuditEvent]:
        """The matching events, in no particular order (callers order by ``seq``)."""
        qs = AuditEvent.objects.all()
        for name in ("environment", "service", "key", "action", "outcome"):
            if value := getattr(self, name):
                qs = qs.filter(**{name: value})
        exact = set(self.exact.split(","))
        if self.secret:
            how = "secret" if "secret" in exact else "secret__icontains"
            qs = qs.filter(**{how: self.secret})
        if self.actor:
            how = "iexact" if "actor" in exact else "icontains"
            qs = qs.filter(
                Q(**{f"actor_username__{how}": self.actor})
                | Q(**{f"actor_email__{how}": self.actor})
            )
        if self.since:
            qs = qs.filter(created__gte=datetime.combine(self.since, time.min, tzinfo=UTC))
        if self.until:
            end = datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=UTC)
            qs = qs.filter(created__lt=end)
        return qs

    def as_params(self) -> dict[str, str]:
        """The non-empty fields as query parameters (dates ISO)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value:
                out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


def one_row_per_action(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """``events`` without the "attempted" events whose outcome was recorded (the outcome event
    names its attempt): one row per action, with its outcome. An attempt with no outcome yet
    stays (it is the one to look at)."""
    settled = AuditEvent.objects.filter(attempt__isnull=False).values("attempt")
    return events.exclude(outcome=Outcome.ATTEMPTED, seq__in=settled)


def _export_records(events: QuerySet[AuditEvent], chunk_size: int) -> Iterator[dict[str, Any]]:
    rows = events.order_by("seq").values_list(*EXPORT_FIELDS).iterator(chunk_size=chunk_size)
    for row in rows:
        item = dict(zip(EXPORT_FIELDS, row, strict=True))
        item["created"] = _iso(item["created"])
        yield item


class _Line:
    """A file-like object whose ``write`` returns what it was given (for ``csv.writer``)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """One CSV cell. Text that a spreadsheet would run as a formula gets a leading ``'``
    (OWASP "CSV injection"); the JSON Lines export keeps every field exact."""
    if type(value) is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _csv_cell(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return value  # numbers


def export_csv(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """``events`` as CSV lines in ``seq`` order, header first: :data:`EXPORT_FIELDS`,
    ``detail`` as JSON. A generator reading ``chunk_size`` rows at a time (constant memory)."""
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS)
    for item in _export_records(events, chunk_size):
        yield writer.writerow([_csv_cell(item[name]) for name in EXPORT_FIELDS])


def export_jsonl(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """``events`` as JSON Lines in ``seq`` order: one object per event with
    :data:`EXPORT_FIELDS`, exactly as hashed (``compute_hash(json.loads(line)) == hash``)."""
    for item in _export_records(events, chunk_size):
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"
