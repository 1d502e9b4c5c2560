"""Signed anchors: the audit chain's head kept outside its own database, so that truncation and
a history rewritten with recomputed hashes are caught (CloudTrail's log-file integrity model;
README "Audit you can prove").

* **Keys**: anchors and evidence packs are signed with Ed25519 (``PORTAL_AUDIT_SIGNING_KEY``,
  never in the database), given as PEM (PKCS#8) or as base64 of its raw 32 bytes. The public key
  (base64 of its raw 32 bytes) is shown on the auditor's chain check and carried in every
  evidence pack, so anyone can check an anchor without holding a secret; keys used before a
  rotation stay trusted through ``PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS``.
* **Anchors** (``PORTAL_AUDIT_ANCHORS``): every ``PORTAL_AUDIT_ANCHOR_EVERY`` events or
  ``PORTAL_AUDIT_ANCHOR_MINUTES`` minutes (:func:`anchor_if_due`, run by
  ``audit_devices.ship``) the chain head (``seq``, ``hash``, time) is signed and written to an
  Object-Lock S3 bucket (``s3:BUCKET/PREFIX``, retention ``COMPLIANCE``) or to CloudWatch Logs
  (``cloudwatch:GROUP:STREAM``), through the sinks of ``audit_devices``.
* **Verification**: :func:`verify_with_anchors` reads them back and walks the chain against them
  (``audit_verify.verify``), then against the audit devices; it reports a forged anchor, a
  rewritten history, a truncated log and a gap, naming the first bad ``seq``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from . import audit_devices, audit_verify
from .audit_devices import CloudWatchStream
from .audit_verify import VerifyResult
from .models import AuditChainHead, AuditDeviceCursor

#: The ``type`` of an anchor record; part of what is signed (no other record verifies as one).
ANCHOR_TYPE = "secrets-portal.audit.anchor/1"
#: S3 keys of anchors under the anchor sink's prefix.
ANCHORS_FOLDER = "anchors/"


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
# Anchors and anchor sinks


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


class S3AnchorSink:
    """Anchors as ``<prefix>anchors/<seq, 20 digits>.json`` with retention ``COMPLIANCE``
    (nobody, root included, can delete or overwrite a locked version until it expires).
    Read back through every object *version*, so a delete marker or a newer version laid
    over an anchor hides nothing."""

    def __init__(self, spec: str) -> None:
        self.bucket, self.prefix = audit_devices.s3_location(spec)
        self.name = f"s3:{spec}"

    def put_anchor(self, anchor: Anchor) -> str:
        key = f"{self.prefix}{ANCHORS_FOLDER}{anchor.seq:020d}.json"
        days: int = settings.PORTAL_AUDIT_ANCHOR_RETENTION_DAYS
        version = audit_devices.put_once(
            Bucket=self.bucket,
            Key=key,
            Body=canonical_json(anchor.as_json()),
            ContentType="application/json",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=timezone.now() + timedelta(days=days),
        )
        return f"s3://{self.bucket}/{key}" + (f"?versionId={version}" if version else "")

    def read_anchors(self, *, from_seq: int = 0) -> AnchorRead:
        s3 = audit_devices.sink_client("s3")
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


def parse_anchor_sink(spec: str) -> AnchorSink:
    """An anchor sink from ``PORTAL_AUDIT_ANCHORS``; ``ValueError`` for an unknown one."""
    kind, _, rest = spec.partition(":")
    if kind == "s3":
        return S3AnchorSink(rest)
    if kind == "cloudwatch":
        return CloudWatchAnchorSink(rest)
    raise ValueError(f"{spec!r} is not an anchor sink (s3:BUCKET/PREFIX, cloudwatch:GROUP:STREAM)")


@functools.cache
def _anchor_sink(spec: str) -> AnchorSink:
    return parse_anchor_sink(spec)


def anchor_sink() -> AnchorSink | None:
    """The configured anchor sink, if any."""
    spec: str = settings.PORTAL_AUDIT_ANCHORS
    return _anchor_sink(spec) if spec and spec != "none" else None


# --------------------------------------------------------------------------------------------
# Anchoring and verifying against the anchors


def anchor_now() -> Anchor | None:
    """Sign the chain head now and write it to the anchor sink; ``None`` with no sink or an
    empty chain. Raises ``audit_devices.SINK_ERRORS`` when the sink refuses."""
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
    cursor = audit_devices.device_cursor(f"anchor:{sink.name}")
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
) -> VerifyResult:
    """Check the anchors' signatures, then walk the chain against them (``audit_verify.verify``).

    A record that is not an anchor, or an anchor signed by none of ``public_keys``, is a
    forged anchor: reported before anything else, naming its ``seq``.
    """
    walk = verify or audit_verify.verify
    if read.malformed:
        return VerifyResult(
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
        return VerifyResult(
            False,
            0,
            bad.seq,
            f"the anchor of event #{bad.seq} ({bad.where}) is not signed by the portal's key: "
            "it was forged, so the chain may have been rewritten to match it",
            anchors=len(read.anchors),
        )
    result: VerifyResult = walk(anchors=[(a.seq, a.hash) for a in read.anchors])
    return result


def verify_with_anchors() -> VerifyResult:
    """``audit_verify.verify`` against every anchor in the anchor sink (without a sink: the
    plain chain walk), then against the devices: one holding an event beyond the database's
    head is a witness of a truncated log, even one cut after the last anchor. When the sink
    cannot be read, the walk's result says so in ``anchor_problem``."""
    sink = anchor_sink()
    if sink is None:
        result = audit_verify.verify()
    else:
        try:
            read = sink.read_anchors()
        except audit_devices.SINK_ERRORS as exc:
            error = audit_devices.sink_error_text(exc)
            problem = f"the anchors could not be read from {sink.name}: {error}"
            result = replace(audit_verify.verify(), anchor_problem=problem)
        else:
            result = verify_against(read, trusted_public_keys())
    return _against_devices(result) if result.ok else result


def _against_devices(result: VerifyResult) -> VerifyResult:
    head = result.head_seq
    for device in audit_devices.devices():
        try:
            held = device.held_after(head)
        except audit_devices.DEVICE_READ_ERRORS:
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


def describe_configuration() -> dict[str, Any]:
    """For the auditor's chain check: each device with the last ``seq`` it took and its last
    error, the anchor sink, the public key and its fingerprint, the oldest unshipped event."""
    key = public_key_text()
    sink = anchor_sink()
    names = [d.name[:200] for d in audit_devices.devices()]
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
        "oldest_unshipped": audit_devices.oldest_unshipped() if names else None,
    }
