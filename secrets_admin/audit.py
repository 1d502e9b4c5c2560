"""The audit log: append-only, hash-chained, fail-closed (ASVS 5.0 V16, "Security Logging and
Error Handling"). This module writes the chain; reading it is elsewhere.

* :func:`record` appends one event. Appends are serialised on the chain head row
  (``SELECT ... FOR UPDATE`` in PostgreSQL; SQLite's single writer lock, taken at ``BEGIN
  IMMEDIATE``), so concurrent writers in several processes never fork the chain.
* :func:`attempt` wraps a change: its ``attempted`` event is committed *before* the body runs,
  so if the audit insert fails nothing reaches Secrets Manager; the outcome follows.
* :func:`record_reveal` commits a reveal's one event before the value is sent.
* :func:`settle` appends the outcome of an attempt left without one
  (``audit_reconcile.reconcile``).

Elsewhere: ``audit_verify`` walks the chain, ``audit_reconcile`` settles attempts and finds
versions made outside the portal, ``audit_export`` filters and exports events, and
``audit_devices`` / ``audit_anchors`` keep copies and signed anchors outside the database.

An event is an :class:`AuditAction` (what) with an :class:`Outcome` (how it ended): a failed
sign-in is ``(sign_in, failed)``, a save is ``(save, attempted)`` then ``(save, succeeded)``.
Events never hold a value: only names, version ids and fingerprints (HMAC-SHA256).

The chain is plain SHA-256, so anyone holding an export can check it without a key; the price is
that someone able to rewrite the database could recompute every hash after the row they changed.
Signed anchors kept outside the database catch that (``audit_anchors``: the head, signed with
Ed25519, in an Object-Lock S3 bucket or CloudWatch Logs), as does a head passed by hand with
``manage.py audit_verify --anchor``. Each appended event also goes to the outbox in the same
transaction, for the audit devices to ship (``audit_devices.ship``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from . import errors
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
            value = utc_iso(value)
        data[name] = value
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_hash(event: AuditEvent | Mapping[str, Any]) -> str:
    """``SHA-256(prev_hash || "\\n" || canonical(event))`` in hex."""
    prev = event["prev_hash"] if isinstance(event, Mapping) else event.prev_hash
    return hashlib.sha256(prev.encode() + b"\n" + canonical(event)).hexdigest()


def utc_iso(value: datetime) -> str:
    """``value`` as UTC ISO-8601 with microseconds: how ``created`` is hashed and exported."""
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
    insert is the hash ``audit_verify.verify`` recomputes: text cut to its column width,
    ``None`` text as ``""``, numbers as numbers. Raises ``TypeError`` for a name that is not a
    field."""
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


def settle(
    action: AuditAction | str, outcome: Outcome | str, *, attempt: int, **fields: Any
) -> AuditEvent | None:
    """Append the outcome of attempt ``#attempt`` on the portal's behalf, for an attempt whose
    own process died before its outcome (``audit_reconcile.reconcile``): ``fields`` as for
    :func:`record`. Returns ``None``, appending nothing, when an outcome event already names the
    attempt (checked under the chain lock, so two reconcilers never settle one attempt twice).
    Committed on return. Raises :class:`AuditUnavailable` when it cannot be appended.
    """
    return _append(
        action,
        outcome,
        None,
        {**fields, "attempt": attempt},
        durable=True,
        unless_settled=attempt,
    )


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
