"""Audit devices: the audit log kept outside its own database, event by event.

Vault's "audit devices", for the portal's hash chain (README "Audit you can prove"):

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
* **Sinks**: the S3 and CloudWatch Logs plumbing (:func:`sink_client`, :func:`put_once`,
  :class:`CloudWatchStream`) that the devices and the anchor sinks (``audit_anchors``) share.
  This is the only audit module that imports boto3 (``deploy/iam/portal-audit-sinks.json``
  grants its calls).

:func:`ship` also writes a signed anchor when one is due (``audit_anchors.anchor_if_due``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import connections
from django.utils import timezone

from . import audit, audit_export
from .cache_lock import cache_lock
from .models import AuditDeviceCursor, AuditEvent, AuditOutbox

if TYPE_CHECKING:
    from .audit_anchors import Anchor

log = logging.getLogger(__name__)

#: S3 keys of events under the device's prefix.
EVENTS_FOLDER = "events/"
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
#: What reading a device back (``held_after``) raises when it cannot be read: a sink's errors,
#: or the file device's.
DEVICE_READ_ERRORS: tuple[type[Exception], ...] = (*SINK_ERRORS, OSError)


# --------------------------------------------------------------------------------------------
# Devices, and the S3 and CloudWatch Logs plumbing they share with the anchor sinks


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


def sink_client(service: str) -> Any:
    """A boto3 client for ``service`` (``s3``, ``logs``) of this thread; ``AWS_ENDPOINT_URL``
    and the region come from the environment, as for Secrets Manager (aws.py). Its calls raise
    :data:`SINK_ERRORS`."""
    found: dict[tuple[str, str], Any] = _clients.__dict__.setdefault("by_service", {})
    key = (service, os.environ.get("AWS_ENDPOINT_URL", ""))
    if key not in found:
        session: Any = boto3.session.Session()
        found[key] = session.client(service, region_name=settings.AWS_REGION, config=_config)
    return found[key]


_clients = threading.local()


def sink_error_text(exc: BaseException) -> str:
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


def s3_location(spec: str) -> tuple[str, str]:
    """``BUCKET[/PREFIX]`` as ``(bucket, "prefix/")``; ``ValueError`` without a bucket."""
    bucket, _, prefix = spec.partition("/")
    if not bucket:
        raise ValueError(f"{spec!r}: s3: wants BUCKET or BUCKET/PREFIX")
    return bucket, (prefix.rstrip("/") + "/") if prefix else ""


def put_once(**kwargs: Any) -> str | None:
    """``PutObject`` unless the key exists (``If-None-Match: *``): the new object's version id
    (``""`` on a bucket without versioning), ``None`` when the key existed."""
    try:
        response = sink_client("s3").put_object(
            IfNoneMatch="*", ChecksumAlgorithm="SHA256", **kwargs
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return None
        raise
    return str(response.get("VersionId") or "")


class S3Device:
    """One object per event, ``<prefix>events/<seq, 20 digits>.json``, written once (a key
    that exists is left alone). The bucket's Object Lock default retention keeps them."""

    def __init__(self, spec: str) -> None:
        self.bucket, self.prefix = s3_location(spec)
        self.name = f"s3:{spec}"

    def key(self, seq: int) -> str:
        return f"{self.prefix}{EVENTS_FOLDER}{seq:020d}.json"

    def held_after(self, seq: int) -> int | None:
        folder = self.prefix + EVENTS_FOLDER
        page = sink_client("s3").list_objects_v2(
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
            return None is not put_once(
                Bucket=self.bucket,
                Key=self.key(seq),
                Body=line.encode(),
                ContentType="application/json",
            )

        with ThreadPoolExecutor(max_workers=_S3_THREADS) as pool:
            return sum(pool.map(put, lines))


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
            sink_client("logs").create_log_stream(
                logGroupName=self.group, logStreamName=self.stream
            )
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
            sink_client("logs").put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=batch
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self._ready = False  # the stream was deleted since: create it again, once
            self._ensure_stream()
            sink_client("logs").put_log_events(
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
                page = sink_client("logs").get_log_events(**kwargs)
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


def device_cursor(name: str) -> AuditDeviceCursor:
    """How far device (or ``anchor:<sink>``) ``name`` got: its ``AuditDeviceCursor`` row."""
    cursor, _ = AuditDeviceCursor.objects.get_or_create(
        name=name[:200], defaults={"updated": timezone.now()}
    )
    return cursor


def _ship_lock(name: str) -> contextlib.AbstractContextManager[bool]:
    """One shipper per device at a time across processes (the cache); a second one skips it.
    Delivery stays correct without it (devices are idempotent on ``seq``)."""
    key = f"portal:audit-ship:{hashlib.sha256(name.encode()).hexdigest()[:32]}"
    return cache_lock(key, seconds=_SHIP_LOCK_SECONDS)


def _ship_device(device: Device, batch: int, report: ShipReport) -> None:
    cursor = device_cursor(device.name)
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
        for line in audit_export.export_jsonl(AuditEvent.objects.filter(seq__in=seqs)):
            seq = _seq_of(line)
            if seq is not None:
                lines.append((seq, line))
        try:
            report.delivered[device.name] += device.deliver(lines)
        except (ClientError, BotoCoreError, OSError, ValueError) as exc:
            report.errors[device.name] = sink_error_text(exc)
            log.error("audit device %s: delivery failed: %s", device.name, sink_error_text(exc))
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
    from . import audit_anchors  # it builds on this module's sinks

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
        report.anchor = audit_anchors.anchor_if_due()
    except (ClientError, BotoCoreError) as exc:
        sink = audit_anchors.anchor_sink()
        name = sink.name if sink else "anchor"
        report.errors[f"anchor:{name}"] = sink_error_text(exc)
        log.error("audit anchor sink %s: write failed: %s", name, sink_error_text(exc))
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
# The background shipper (one daemon thread per process, started by the first append)

_worker_lock = threading.Lock()
_worker: threading.Thread | None = None
_wake_up = threading.Event()


def background_enabled() -> bool:
    """Whether this process ships in a background thread (``PORTAL_AUDIT_SHIP_IN_BACKGROUND``
    and something to ship to)."""
    from . import audit_anchors  # it builds on this module's sinks

    enabled: bool = settings.PORTAL_AUDIT_SHIP_IN_BACKGROUND
    return enabled and (outbox_enabled() or audit_anchors.anchor_sink() is not None)


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
