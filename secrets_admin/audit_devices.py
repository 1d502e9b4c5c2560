"""Audit devices and signed anchors: the audit log kept outside its own database.

Vault's "audit devices" and CloudTrail's log-file integrity, for the portal's hash chain
(README "Audit you can prove"):

* **Devices** (``PORTAL_AUDIT_DEVICES``): every event, as the JSON line the export writes (no
  values), goes to each device: ``stdout`` (for any log shipper), ``file:/path`` (append-only),
  ``cloudwatch:GROUP:STREAM`` (CloudWatch Logs) and ``s3:BUCKET/PREFIX`` (one object per event;
  the bucket has Object Lock on). Delivery is at least once through the ``AuditOutbox`` table,
  filled in the transaction that appends the event and emptied by :func:`ship` (a background
  thread in each web process, and ``manage.py audit_ship``), never on a request's path. Each
  device is idempotent on ``seq``: the file skips what it already holds, S3 writes each key
  once (``If-None-Match: *``), CloudWatch skips what its stream ends with (and readers dedupe
  on ``seq``).
* **Lag** (``PORTAL_AUDIT_MAX_LAG`` seconds): :func:`check_lag` refuses writes and reveals when
  the oldest event not yet on every device is older than that (Vault refuses requests when no
  audit device accepts them).
* **Anchors** (``PORTAL_AUDIT_ANCHORS``): every ``PORTAL_AUDIT_ANCHOR_EVERY`` events or
  ``PORTAL_AUDIT_ANCHOR_MINUTES`` minutes the chain head (``seq``, ``hash``, time) is signed with
  Ed25519 (``PORTAL_AUDIT_SIGNING_KEY``, never in the database) and written to an Object-Lock
  S3 bucket (``s3:BUCKET/PREFIX``, retention ``COMPLIANCE``) or to CloudWatch Logs
  (``cloudwatch:GROUP:STREAM``). :func:`verify_with_anchors` reads them back and reports a
  forged anchor, a rewritten history, a truncated log and a gap, naming the first bad ``seq``.

The signing key is an Ed25519 private key given as PEM (PKCS#8) or as base64 of its raw 32
bytes. The public key (base64 of its raw 32 bytes) is shown on the auditor's chain check and
carried in every evidence pack, so anyone can check an anchor without holding a secret.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone

from . import audit
from .models import AuditChainHead, AuditDeviceCursor, AuditEvent, AuditOutbox

log = logging.getLogger(__name__)

#: The ``type`` of an anchor record; part of what is signed (no other record verifies as one).
ANCHOR_TYPE = "secrets-portal.audit.anchor/1"
#: S3 keys under the device's or anchor sink's prefix.
EVENTS_FOLDER = "events/"
ANCHORS_FOLDER = "anchors/"
#: CloudWatch ``PutLogEvents`` limits (CloudWatch Logs quotas): events and bytes per batch,
#: each event counting 26 bytes more than its message.
_CW_MAX_EVENTS = 10_000
_CW_MAX_BYTES = 1_048_576
_CW_EVENT_OVERHEAD = 26
#: Concurrent ``PutObject`` calls per S3 batch (one object per event).
_S3_THREADS = 8
_SHIP_LOCK_SECONDS = 300

_config = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20
)

#: What a sink (S3, CloudWatch Logs) raises when it refuses or cannot be reached; callers
#: outside this module catch these without importing botocore themselves.
SINK_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)


# --------------------------------------------------------------------------------------------
# Keys


@functools.cache
def _ephemeral_key() -> Ed25519PrivateKey:
    """The demo's and the tests' key: generated once per process (never in production, where
    settings refuse to start without ``PORTAL_AUDIT_SIGNING_KEY``)."""
    return Ed25519PrivateKey.generate()


@functools.cache
def load_signing_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8) or base64 of its raw 32 bytes.

    Raises ``ImproperlyConfigured`` naming ``PORTAL_AUDIT_SIGNING_KEY`` for anything else.
    """
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "PORTAL_AUDIT_SIGNING_KEY must be an Ed25519 private key: PEM (PKCS#8) or base64 "
            f"of the raw 32 bytes ({type(exc).__name__})."
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("PORTAL_AUDIT_SIGNING_KEY is a PEM key but not an Ed25519 one.")
    return key


def signing_key() -> Ed25519PrivateKey:
    """The key that signs anchors and evidence packs (``PORTAL_AUDIT_SIGNING_KEY``)."""
    text: str = settings.PORTAL_AUDIT_SIGNING_KEY
    return load_signing_key(text) if text else _ephemeral_key()


def public_key_text(key: Ed25519PublicKey | None = None) -> str:
    """A public key as base64 of its raw 32 bytes (default: the portal's)."""
    key = key or signing_key().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_fingerprint(public_key: str) -> str:
    """``SHA256:<base64>`` of the raw public key (as OpenSSH prints key fingerprints)."""
    raw = base64.b64decode(public_key)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def trusted_public_keys() -> list[Ed25519PublicKey]:
    """The portal's public key, then ``PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS`` (comma-separated,
    base64 raw): anchors signed before a key rotation stay valid. ``ImproperlyConfigured``
    for an entry that is not an Ed25519 public key."""
    keys = [signing_key().public_key()]
    previous: list[str] = settings.PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS
    for text in previous:
        try:
            keys.append(load_public_key(text))
        except ValueError as exc:
            raise ImproperlyConfigured(f"PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS: {exc}") from None
    return keys


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its raw 32 bytes or PEM; ``ValueError`` otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an Ed25519 public key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def canonical_json(data: Any) -> bytes:
    """Sorted-key, ASCII-only, compact JSON: the bytes that are signed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(data: bytes) -> str:
    """Base64 Ed25519 signature of ``data`` with the portal's key."""
    return base64.b64encode(signing_key().sign(data)).decode()


def signature_valid(public_key: Ed25519PublicKey, signature: str, data: bytes) -> bool:
    """Whether ``signature`` (base64) signs ``data`` under ``public_key``."""
    try:
        public_key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------
# Anchors


@dataclass(frozen=True)
class Anchor:
    """A signed statement "the chain's event ``seq`` had hash ``hash`` at ``time``".

    ``signature`` is Ed25519 over :meth:`signed_bytes` by the key whose public half is
    ``public_key``; ``where`` says where it was read from (not signed).
    """

    seq: int
    hash: str
    time: str
    public_key: str
    signature: str
    where: str = field(default="", compare=False)

    def statement(self) -> dict[str, Any]:
        return {
            "type": ANCHOR_TYPE,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "public_key": self.public_key,
        }

    def signed_bytes(self) -> bytes:
        return canonical_json(self.statement())

    def as_json(self) -> dict[str, Any]:
        """The record written to the anchor sink and into evidence packs."""
        return {**self.statement(), "signature": self.signature}

    @classmethod
    def from_json(cls, data: Any, *, where: str = "") -> Anchor:
        """Parse an anchor record; ``ValueError`` when it is not one."""
        if not isinstance(data, dict) or data.get("type") != ANCHOR_TYPE:
            raise ValueError("not an anchor record")
        seq, digest = data.get("seq"), data.get("hash")
        texts = [data.get(n) for n in ("time", "public_key", "signature")]
        if type(seq) is not int or not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("an anchor record without seq or hash")
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("an anchor record without time, public key or signature")
        time_, key, signature = (str(t) for t in texts)
        return cls(seq, digest, time_, key, signature, where)

    def valid_under(self, public_key: Ed25519PublicKey) -> bool:
        """Signed by ``public_key`` (and claims that key)."""
        return self.public_key == public_key_text(public_key) and signature_valid(
            public_key, self.signature, self.signed_bytes()
        )


def sign_anchor(seq: int, digest: str, *, at: datetime | None = None) -> Anchor:
    """An anchor of event ``seq`` with hash ``digest``, signed with the portal's key now."""
    when = (at or timezone.now()).astimezone(UTC).isoformat(timespec="microseconds")
    unsigned = Anchor(seq, digest, when, public_key_text(), "")
    return replace(unsigned, signature=sign(unsigned.signed_bytes()))


@dataclass(frozen=True)
class AnchorRead:
    """What an anchor sink holds: the anchors, and where records that are not anchors lie."""

    anchors: list[Anchor]
    malformed: list[str]


# --------------------------------------------------------------------------------------------
# Devices and anchor sinks


class Device(Protocol):
    """An audit device: takes ``(seq, JSON line)`` pairs in ``seq`` order, at least once."""

    name: str

    def deliver(self, lines: list[tuple[int, str]]) -> int:
        """Write the lines it does not hold yet; return how many were new. Raises on failure
        (the outbox keeps them for the next round)."""
        ...

    def held_after(self, seq: int) -> int | None:
        """A ``seq`` greater than ``seq`` that the device holds (``None``: none, or it cannot
        be read back): a witness of events deleted from the database's tail."""
        ...


class AnchorSink(Protocol):
    """Where anchors are written and read back from."""

    name: str

    def put_anchor(self, anchor: Anchor) -> str:
        """Write ``anchor``; return where it went."""
        ...

    def read_anchors(self, *, from_seq: int = 0) -> AnchorRead:
        """Every anchor record (of events from ``from_seq`` on, at least), including ones
        written over or hidden (S3 versions)."""
        ...


def _aws(service: str) -> Any:
    """A boto3 client for ``service`` (``s3``, ``logs``) of this thread; ``AWS_ENDPOINT_URL``
    and the region come from the environment, as for Secrets Manager (aws.py)."""
    found: dict[tuple[str, str], Any] = _clients.__dict__.setdefault("by_service", {})
    key = (service, os.environ.get("AWS_ENDPOINT_URL", ""))
    if key not in found:
        session: Any = boto3.session.Session()
        found[key] = session.client(service, region_name=settings.AWS_REGION, config=_config)
    return found[key]


_clients = threading.local()


def _error_text(exc: BaseException) -> str:
    """A value-free sentence for a delivery failure: the AWS error code or the class name."""
    if isinstance(exc, ClientError):
        return f"AWS {exc.response.get('Error', {}).get('Code', 'error')}"
    return type(exc).__name__


def _seq_of(line: str) -> int | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    seq = data.get("seq") if isinstance(data, dict) else None
    return seq if type(seq) is int else None


class StdoutDevice:
    """Each event as one JSON line on standard output (for any log shipper). At least once:
    a line may repeat after a crash; consumers dedupe on ``seq``."""

    name = "stdout"

    def deliver(self, lines: list[tuple[int, str]]) -> int:
        sys.stdout.write("".join(line for _, line in lines))
        sys.stdout.flush()
        return len(lines)

    def held_after(self, seq: int) -> int | None:
        return None  # what went to stdout cannot be read back


class FileDevice:
    """An append-only JSON Lines file. Skips events up to the last ``seq`` the file ends with,
    so a redelivered batch writes nothing twice; ``fsync`` before the batch counts as shipped.
    Make the file append-only for the portal's user (``chattr +a``) in production."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.name = f"file:{path}"

    def last_seq(self) -> tuple[int, bool]:
        """The last ``seq`` written, and whether the file ends in the middle of a line."""
        try:
            with self.path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 65536))
                tail = f.read()
        except FileNotFoundError:
            return 0, False
        for line in reversed(tail.split(b"\n")):
            seq = _seq_of(line.decode(errors="replace"))
            if seq is not None:
                return seq, bool(tail) and not tail.endswith(b"\n")
        return 0, bool(tail) and not tail.endswith(b"\n")

    def held_after(self, seq: int) -> int | None:
        last, _ = self.last_seq()
        return last if last > seq else None

    def deliver(self, lines: list[tuple[int, str]]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # Shippers in several processes: one reads the tail and appends at a time.
            fcntl.flock(fd, fcntl.LOCK_EX)
            last, torn = self.last_seq()
            new = [line for seq, line in lines if seq > last]
            if new:
                os.write(fd, (("\n" if torn else "") + "".join(new)).encode())
                os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        return len(new)


def _s3_location(spec: str) -> tuple[str, str]:
    bucket, _, prefix = spec.partition("/")
    if not bucket:
        raise ValueError(f"{spec!r}: s3: wants BUCKET or BUCKET/PREFIX")
    return bucket, (prefix.rstrip("/") + "/") if prefix else ""


def _put_once(**kwargs: Any) -> str | None:
    """``PutObject`` unless the key exists (``If-None-Match: *``): the new object's version id
    (``""`` on a bucket without versioning), ``None`` when the key existed."""
    try:
        response = _aws("s3").put_object(IfNoneMatch="*", ChecksumAlgorithm="SHA256", **kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return None
        raise
    return str(response.get("VersionId") or "")


class S3Device:
    """One object per event, ``<prefix>events/<seq, 20 digits>.json``, written once (a key
    that exists is left alone). The bucket's Object Lock default retention keeps them."""

    def __init__(self, spec: str) -> None:
        self.bucket, self.prefix = _s3_location(spec)
        self.name = f"s3:{spec}"

    def key(self, seq: int) -> str:
        return f"{self.prefix}{EVENTS_FOLDER}{seq:020d}.json"

    def held_after(self, seq: int) -> int | None:
        folder = self.prefix + EVENTS_FOLDER
        page = _aws("s3").list_objects_v2(
            Bucket=self.bucket, Prefix=folder, StartAfter=self.key(seq), MaxKeys=1
        )
        for item in page.get("Contents", []):
            name = str(item["Key"]).removeprefix(folder).removesuffix(".json")
            if name.isdigit():
                return int(name)
        return None

    def deliver(self, lines: list[tuple[int, str]]) -> int:
        def put(item: tuple[int, str]) -> bool:
            seq, line = item
            return None is not _put_once(
                Bucket=self.bucket,
                Key=self.key(seq),
                Body=line.encode(),
                ContentType="application/json",
            )

        with ThreadPoolExecutor(max_workers=_S3_THREADS) as pool:
            return sum(pool.map(put, lines))


class S3AnchorSink:
    """Anchors as ``<prefix>anchors/<seq, 20 digits>.json`` with retention ``COMPLIANCE``
    (nobody, root included, can delete or overwrite a locked version until it expires).
    Read back through every object *version*, so a delete marker or a newer version laid
    over an anchor hides nothing."""

    def __init__(self, spec: str) -> None:
        self.bucket, self.prefix = _s3_location(spec)
        self.name = f"s3:{spec}"

    def put_anchor(self, anchor: Anchor) -> str:
        key = f"{self.prefix}{ANCHORS_FOLDER}{anchor.seq:020d}.json"
        days: int = settings.PORTAL_AUDIT_ANCHOR_RETENTION_DAYS
        version = _put_once(
            Bucket=self.bucket,
            Key=key,
            Body=canonical_json(anchor.as_json()),
            ContentType="application/json",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=timezone.now() + timedelta(days=days),
        )
        return f"s3://{self.bucket}/{key}" + (f"?versionId={version}" if version else "")

    def read_anchors(self, *, from_seq: int = 0) -> AnchorRead:
        s3 = _aws("s3")
        anchors: list[Anchor] = []
        malformed: list[str] = []
        folder = self.prefix + ANCHORS_FOLDER
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=folder)
        for page in pages:
            for version in page.get("Versions", []):
                key, version_id = version["Key"], version["VersionId"]
                where = f"s3://{self.bucket}/{key}?versionId={version_id}"
                name = key.removeprefix(folder).removesuffix(".json")
                if name.isdigit() and int(name) < from_seq:
                    continue  # listing is cheap, reading each object is not
                body = s3.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"]
                try:
                    anchors.append(Anchor.from_json(json.loads(body.read()), where=where))
                except ValueError:
                    malformed.append(where)
        return AnchorRead(anchors, malformed)


def _cloudwatch_location(spec: str) -> tuple[str, str]:
    group, _, stream = spec.rpartition(":")
    if not group or not stream:
        raise ValueError(f"{spec!r}: cloudwatch: wants LOG_GROUP:LOG_STREAM")
    return group, stream


class CloudWatchStream:
    """One CloudWatch Logs stream (created on first use; the log group must exist)."""

    def __init__(self, spec: str) -> None:
        self.group, self.stream = _cloudwatch_location(spec)
        self.name = f"cloudwatch:{spec}"
        self._ready = False

    def _ensure_stream(self) -> None:
        if self._ready:
            return
        try:
            _aws("logs").create_log_stream(logGroupName=self.group, logStreamName=self.stream)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        self._ready = True

    def put(self, messages: list[tuple[int, str]]) -> None:
        """``PutLogEvents`` in batches within CloudWatch's limits; ``(epoch ms, message)``."""
        self._ensure_stream()
        batch: list[dict[str, Any]] = []
        size = 0
        last_ms = 0
        for ms, message in messages:
            cost = len(message.encode()) + _CW_EVENT_OVERHEAD
            if batch and (len(batch) >= _CW_MAX_EVENTS or size + cost > _CW_MAX_BYTES):
                self._send(batch)
                batch, size = [], 0
            last_ms = max(last_ms, ms)  # a batch must be in time order
            batch.append({"timestamp": last_ms, "message": message})
            size += cost
        if batch:
            self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            _aws("logs").put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=batch
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self._ready = False  # the stream was deleted since: create it again, once
            self._ensure_stream()
            _aws("logs").put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=batch
            )

    def messages(self, *, from_head: bool = True, limit: int | None = None) -> Iterator[str]:
        """The stream's messages (oldest first, or only the newest ``limit`` ones)."""
        kwargs: dict[str, Any] = {
            "logGroupName": self.group,
            "logStreamName": self.stream,
            "startFromHead": from_head,
        }
        if limit:
            kwargs["limit"] = limit
        token = None
        while True:
            try:
                page = _aws("logs").get_log_events(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return
                raise
            for event in page.get("events", []):
                yield str(event.get("message", ""))
            if limit:
                return
            next_token = page.get("nextForwardToken")
            if not next_token or next_token == token:
                return
            token = next_token
            kwargs["nextToken"] = token


class CloudWatchDevice(CloudWatchStream):
    """Events as log events of one stream (timestamp: the event's time). Skips events up to
    the ``seq`` the stream ends with; readers dedupe on ``seq`` as well, since a stream's
    newest events may take a moment to read back."""

    def newest_seq(self) -> int:
        return _seq_of(next(self.messages(from_head=False, limit=1), "")) or 0

    def held_after(self, seq: int) -> int | None:
        newest = self.newest_seq()
        return newest if newest > seq else None

    def deliver(self, lines: list[tuple[int, str]]) -> int:
        last = self.newest_seq()
        new = [(seq, line) for seq, line in lines if seq > last]
        messages = []
        for _, line in new:
            created = datetime.fromisoformat(json.loads(line)["created"])
            messages.append((int(created.timestamp() * 1000), line.rstrip("\n")))
        if messages:
            self.put(messages)
        return len(new)


class CloudWatchAnchorSink(CloudWatchStream):
    """Anchors as log events of one stream (log events cannot be edited; deny
    ``logs:DeleteLogStream`` and ``logs:DeleteLogGroup`` to everyone but break-glass)."""

    def put_anchor(self, anchor: Anchor) -> str:
        self.put([(int(timezone.now().timestamp() * 1000), json.dumps(anchor.as_json()))])
        return f"cloudwatch:{self.group}:{self.stream}"

    def read_anchors(self, *, from_seq: int = 0) -> AnchorRead:
        anchors: list[Anchor] = []
        malformed: list[str] = []
        for i, message in enumerate(self.messages()):
            where = f"cloudwatch:{self.group}:{self.stream} (log event {i + 1})"
            try:
                anchors.append(Anchor.from_json(json.loads(message), where=where))
            except ValueError:
                malformed.append(where)
        return AnchorRead(anchors, malformed)


def parse_device(spec: str) -> Device:
    """A device from its ``PORTAL_AUDIT_DEVICES`` entry; ``ValueError`` for an unknown one."""
    kind, _, rest = spec.partition(":")
    if spec == "stdout":
        return StdoutDevice()
    if kind == "file" and rest:
        return FileDevice(rest)
    if kind == "s3":
        return S3Device(rest)
    if kind == "cloudwatch":
        return CloudWatchDevice(rest)
    raise ValueError(
        f"{spec!r} is not an audit device (stdout, file:/path, cloudwatch:GROUP:STREAM, "
        "s3:BUCKET/PREFIX)"
    )


def parse_anchor_sink(spec: str) -> AnchorSink:
    """An anchor sink from ``PORTAL_AUDIT_ANCHORS``; ``ValueError`` for an unknown one."""
    kind, _, rest = spec.partition(":")
    if kind == "s3":
        return S3AnchorSink(rest)
    if kind == "cloudwatch":
        return CloudWatchAnchorSink(rest)
    raise ValueError(f"{spec!r} is not an anchor sink (s3:BUCKET/PREFIX, cloudwatch:GROUP:STREAM)")


def device_specs() -> list[str]:
    """``PORTAL_AUDIT_DEVICES`` without ``none``."""
    specs: list[str] = settings.PORTAL_AUDIT_DEVICES
    return [s for s in specs if s and s != "none"]


@functools.cache
def _devices(specs: tuple[str, ...]) -> tuple[Device, ...]:
    return tuple(parse_device(s) for s in specs)


def devices() -> tuple[Device, ...]:
    """The configured devices (``ValueError`` for a bad entry; the system check says so)."""
    return _devices(tuple(device_specs()))


@functools.cache
def _anchor_sink(spec: str) -> AnchorSink:
    return parse_anchor_sink(spec)


def anchor_sink() -> AnchorSink | None:
    """The configured anchor sink, if any."""
    spec: str = settings.PORTAL_AUDIT_ANCHORS
    return _anchor_sink(spec) if spec and spec != "none" else None


def outbox_enabled() -> bool:
    """Whether appended events go to the outbox (some device is configured)."""
    return bool(device_specs())


# --------------------------------------------------------------------------------------------
# Shipping


@dataclass
class ShipReport:
    """One :func:`ship` round: events newly written per device, errors per device (value-free
    sentences), the anchor written (if one was due) and the events still in the outbox."""

    delivered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    anchor: Anchor | None = None
    pending: int = 0


def _cursor(name: str) -> AuditDeviceCursor:
    cursor, _ = AuditDeviceCursor.objects.get_or_create(
        name=name[:200], defaults={"updated": timezone.now()}
    )
    return cursor


@contextlib.contextmanager
def _ship_lock(name: str) -> Iterator[bool]:
    """One shipper per device at a time across processes (the cache); a second one skips it.
    Delivery stays correct without it (devices are idempotent on ``seq``)."""
    key = f"portal:audit-ship:{hashlib.sha256(name.encode()).hexdigest()[:32]}"
    token = uuid.uuid4().hex
    held = cache.add(key, token, _SHIP_LOCK_SECONDS)
    try:
        yield held
    finally:
        if held and cache.get(key) == token:
            cache.delete(key)


def _ship_device(device: Device, batch: int, report: ShipReport) -> None:
    cursor = _cursor(device.name)
    report.delivered[device.name] = 0
    while True:
        seqs = list(
            AuditOutbox.objects.filter(seq__gt=cursor.seq)
            .order_by("seq")
            .values_list("seq", flat=True)[:batch]
        )
        if not seqs:
            break
        lines = []
        for line in audit.export_jsonl(AuditEvent.objects.filter(seq__in=seqs)):
            seq = _seq_of(line)
            if seq is not None:
                lines.append((seq, line))
        try:
            report.delivered[device.name] += device.deliver(lines)
        except (ClientError, BotoCoreError, OSError, ValueError) as exc:
            report.errors[device.name] = _error_text(exc)
            log.error("audit device %s: delivery failed: %s", device.name, _error_text(exc))
            AuditDeviceCursor.objects.filter(name=cursor.name).update(
                error=report.errors[device.name], updated=timezone.now()
            )
            return
        cursor.seq, cursor.error, cursor.updated = seqs[-1], "", timezone.now()
        cursor.save(update_fields=["seq", "error", "updated"])


def ship(*, batch: int = 500) -> ShipReport:
    """Deliver every event in the outbox to every device, then anchor if due.

    At least once: a device's cursor moves only after it took a batch, so a crash or an
    outage leaves the events for the next round. Outbox rows every device has are removed.
    Raises ``ValueError`` for a misconfigured device.
    """
    report = ShipReport()
    configured = devices()
    for device in configured:
        with _ship_lock(device.name) as held:
            if held:
                _ship_device(device, batch, report)
    if configured:
        names = [d.name[:200] for d in configured]
        cursors = dict(AuditDeviceCursor.objects.filter(name__in=names).values_list("name", "seq"))
        low = min(cursors.get(n, 0) for n in names)
        AuditOutbox.objects.filter(seq__lte=low).delete()
        report.pending = AuditOutbox.objects.count()
    try:
        report.anchor = anchor_if_due()
    except (ClientError, BotoCoreError) as exc:
        sink = anchor_sink()
        name = sink.name if sink else "anchor"
        report.errors[f"anchor:{name}"] = _error_text(exc)
        log.error("audit anchor sink %s: write failed: %s", name, _error_text(exc))
    return report


def oldest_unshipped() -> datetime | None:
    """When the oldest event not yet on every device was appended (``None``: none waits)."""
    return AuditOutbox.objects.order_by("seq").values_list("created", flat=True).first()


def check_lag() -> None:
    """Refuse (:class:`~secrets_admin.audit.AuditDevicesBehind`) when the oldest event not yet
    on every device is older than ``PORTAL_AUDIT_MAX_LAG`` seconds (0: never refuse)."""
    limit: int = settings.PORTAL_AUDIT_MAX_LAG
    if not limit or not outbox_enabled():
        return
    oldest = oldest_unshipped()
    if oldest is not None and timezone.now() - oldest > timedelta(seconds=limit):
        wake()
        raise audit.AuditDevicesBehind()


# --------------------------------------------------------------------------------------------
# Anchoring


def anchor_now() -> Anchor | None:
    """Sign the chain head now and write it to the anchor sink; ``None`` with no sink or an
    empty chain. Raises ``ClientError``/``BotoCoreError`` when the sink refuses."""
    sink = anchor_sink()
    head = AuditChainHead.objects.filter(pk=1).first()
    if sink is None or head is None or head.seq == 0:
        return None
    anchor = sign_anchor(head.seq, head.hash)
    where = sink.put_anchor(anchor)
    AuditDeviceCursor.objects.update_or_create(
        name=f"anchor:{sink.name}"[:200],
        defaults={"seq": head.seq, "updated": timezone.now(), "error": ""},
    )
    return replace(anchor, where=where)


def anchor_if_due() -> Anchor | None:
    """Anchor the head when ``PORTAL_AUDIT_ANCHOR_EVERY`` events were appended since the last
    anchor, or ``PORTAL_AUDIT_ANCHOR_MINUTES`` minutes passed with any appended."""
    sink = anchor_sink()
    if sink is None:
        return None
    cursor = _cursor(f"anchor:{sink.name}")
    head_seq = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    if head_seq <= cursor.seq:
        return None
    every: int = settings.PORTAL_AUDIT_ANCHOR_EVERY
    minutes: int = settings.PORTAL_AUDIT_ANCHOR_MINUTES
    due_by_time = timezone.now() - cursor.updated >= timedelta(minutes=minutes)
    if head_seq - cursor.seq >= every or due_by_time:
        return anchor_now()
    return None


def verify_against(
    read: AnchorRead,
    public_keys: list[Ed25519PublicKey],
    *,
    verify: Callable[..., Any] | None = None,
) -> audit.VerifyResult:
    """Check the anchors' signatures, then walk the chain against them (:func:`audit.verify`).

    A record that is not an anchor, or an anchor signed by none of ``public_keys``, is a
    forged anchor: reported before anything else, naming its ``seq``.
    """
    walk = verify or audit.verify
    if read.malformed:
        return audit.VerifyResult(
            False,
            0,
            None,
            f"the anchor sink holds a record that is not a signed anchor ({read.malformed[0]}): "
            "it was forged or damaged",
            anchors=len(read.anchors),
        )
    forged = sorted(
        (a for a in read.anchors if not any(a.valid_under(k) for k in public_keys)),
        key=lambda a: a.seq,
    )
    if forged:
        bad = forged[0]
        return audit.VerifyResult(
            False,
            0,
            bad.seq,
            f"the anchor of event #{bad.seq} ({bad.where}) is not signed by the portal's key: "
            "it was forged, so the chain may have been rewritten to match it",
            anchors=len(read.anchors),
        )
    result: audit.VerifyResult = walk(anchors=[(a.seq, a.hash) for a in read.anchors])
    return result


def verify_with_anchors() -> audit.VerifyResult:
    """:func:`audit.verify` against every anchor in the anchor sink (without a sink: the
    plain chain walk), then against the devices: one holding an event beyond the database's
    head is a witness of a truncated log, even one cut after the last anchor. When the sink
    cannot be read, the walk's result says so in ``anchor_problem``."""
    sink = anchor_sink()
    if sink is None:
        result = audit.verify()
    else:
        try:
            read = sink.read_anchors()
        except (ClientError, BotoCoreError) as exc:
            problem = f"the anchors could not be read from {sink.name}: {_error_text(exc)}"
            result = replace(audit.verify(), anchor_problem=problem)
        else:
            result = verify_against(read, trusted_public_keys())
    return _against_devices(result) if result.ok else result


def _against_devices(result: audit.VerifyResult) -> audit.VerifyResult:
    head = result.head_seq
    for device in devices():
        try:
            held = device.held_after(head)
        except (ClientError, BotoCoreError, OSError):
            continue  # a device that cannot be read proves nothing either way
        if held is not None:
            return replace(
                result,
                ok=False,
                first_bad_seq=head + 1,
                problem=(
                    f"the log ends at event #{head} but the audit device {device.name} holds "
                    f"event #{held}: events after #{head} were deleted (truncated)"
                ),
            )
    return result


# --------------------------------------------------------------------------------------------
# The background shipper (one daemon thread per process, started by the first append)

_worker_lock = threading.Lock()
_worker: threading.Thread | None = None
_wake_up = threading.Event()


def background_enabled() -> bool:
    """Whether this process ships in a background thread (``PORTAL_AUDIT_SHIP_IN_BACKGROUND``
    and something to ship to)."""
    enabled: bool = settings.PORTAL_AUDIT_SHIP_IN_BACKGROUND
    return enabled and (outbox_enabled() or anchor_sink() is not None)


def _run_worker() -> None:
    while background_enabled():  # ends when the configuration no longer asks for it
        interval: float = settings.PORTAL_AUDIT_SHIP_INTERVAL
        _wake_up.wait(timeout=interval)
        _wake_up.clear()
        try:
            ship()
        except Exception:  # a thread's failure would otherwise vanish: log it, go on
            log.exception("audit shipping failed")
        finally:
            connections.close_all()  # this thread's connections only


def wake() -> None:
    """Start the shipper thread if this process has none, and make it ship now."""
    global _worker
    if not background_enabled():
        return
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run_worker, name="portal-audit-ship", daemon=True)
            _worker.start()
    _wake_up.set()


def describe_configuration() -> dict[str, Any]:
    """For the auditor's chain check: each device with the last ``seq`` it took and its last
    error, the anchor sink, the public key and its fingerprint, the oldest unshipped event."""
    key = public_key_text()
    sink = anchor_sink()
    names = [d.name[:200] for d in devices()]
    found = {c.name: c for c in AuditDeviceCursor.objects.filter(name__in=names)}
    return {
        "devices": [
            {
                "name": name,
                "seq": found[name].seq if name in found else 0,
                "error": found[name].error if name in found else "",
            }
            for name in names
        ],
        "anchor_sink": sink.name if sink else "",
        "public_key": key,
        "fingerprint": key_fingerprint(key),
        "oldest_unshipped": oldest_unshipped() if names else None,
    }
