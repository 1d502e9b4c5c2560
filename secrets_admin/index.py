"""The hygiene index: every secret of the account and, per cell of each unified secret's current
version, its JSON type, its fingerprint and when it last changed. Names, metadata and
fingerprints only, never a value (invariant 1): values are read here, reduced to
:class:`CellFacts` at once, and dropped.

How it is filled and kept current (each version's value is read at most once, never per view):

* :func:`record_write` after a portal save: no AWS call, the caller holds the saved document;
* :func:`refresh` from the background listing refresh and :func:`scan` (``manage.py
  secrets_scan``): ``ListSecrets`` metadata for every secret; for each unified secret whose
  ``AWSCURRENT`` version differs from the indexed one, one ``ListSecretVersionIds`` and one
  ``GetSecretValue`` per version created since the indexed one (at most
  ``PORTAL_INDEX_HISTORY_VERSIONS`` earlier versions besides the current one).

When a cell last changed is derived from the version history (fingerprints compared across
versions, newest first) and the audit log; :class:`ChangedHow` says how it is known. The pages
that read the index are in the ``hygiene`` package.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from . import aws, documents
from .models import AuditEvent, IndexCell, IndexedSecret

logger = logging.getLogger(__name__)

Place = tuple[str, str, str]  # (environment, service, key)

#: ``IndexedSecret.kind`` of a secret created without a value (besides ``documents.Kind``).
NO_VALUE = "no_value"

#: Labels of versions that were never the live value (proposals, stagings, a rotation's draft):
#: skipped when walking the history.
_NOT_LIVE = ("PORTAL_STAGED", aws.PENDING)


class ChangedHow(enum.StrEnum):
    """How a cell's ``changed_at`` is known."""

    PORTAL = "portal"  # a portal save brought the value: time and person from the audit log
    HISTORY = "history"  # the version that brought it, found by comparing fingerprints
    SINCE = "since"  # equal in every version read (bounded): changed at or before changed_at
    CREATED = "created"  # equal since the oldest version AWS keeps

    @property
    def label(self) -> str:
        return {
            "portal": "saved in the portal",
            "history": "from version history",
            "since": "at or before (history read so far)",
            "created": "since the oldest version",
        }[self.value]


@dataclass(frozen=True)
class CellFacts:
    """What the index keeps of one cell's value: its JSON type, fingerprint (64 hex), whether
    it is empty ("" / whitespace / null) and whether it counts as a credential (a non-empty
    string whose key is not in ``PORTAL_NOT_CREDENTIAL_KEYS``)."""

    value_type: str
    fingerprint: str
    empty: bool
    credential: bool


@dataclass(frozen=True)
class Change:
    """When a cell took its present value, how that is known, the version and who (portal)."""

    at: datetime | None
    how: ChangedHow
    version_id: str = ""
    by: str = ""


def _fingerprint(value: Any) -> str:
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), value)


def is_credential_key(key: str) -> bool:
    """Whether a key names a credential rather than configuration (``PORTAL_NOT_CREDENTIAL_KEYS``
    shell patterns, matched without regard to case)."""
    low = key.lower()
    return not any(fnmatch.fnmatchcase(low, p.lower()) for p in settings.PORTAL_NOT_CREDENTIAL_KEYS)


def cell_facts(document: Mapping[str, Any]) -> dict[Place, CellFacts]:
    """The value-free facts of every cell of a conforming document, by ``(environment, service,
    key)``."""
    out: dict[Place, CellFacts] = {}
    for cell in documents.cells(document):
        kind = documents.value_type(cell.value)
        empty = cell.value is None or (kind == "string" and not str(cell.value).strip())
        out[(cell.environment, cell.service, cell.key)] = CellFacts(
            kind,
            _fingerprint(cell.value),
            empty,
            kind == "string" and not empty and is_credential_key(cell.key),
        )
    return out


def _layout(document: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    return {
        env: {service: len(keys) for service, keys in document[env].items()}
        for env in documents.environments(document)
    }


def _classify(value: aws.SecretValue) -> documents.Classified:
    if value.binary is not None:
        return documents.classify_binary(len(value.binary))
    return documents.classify(value.text or "")


# --------------------------------------------------------------------------------------------
# Writing rows


#: How many times a secret's rows are written before a lock conflict is given up (raised).
STORE_ATTEMPTS = 3

#: The PostgreSQL advisory lock the index's writes take turns on (a constant 64-bit key).
WRITE_LOCK_ID = int.from_bytes(hashlib.sha256(b"secrets-portal:index").digest()[:8], "big") - 2**63


@contextlib.contextmanager
def _index_write() -> Iterator[None]:
    """One transaction of the index's writes, taking turns with every other one: the ``shared``
    flags are counted from the committed rows of all secrets, so two writes at once (a save
    and the listing's refresh, two saves of a shared credential) must not each count without
    the other's rows. PostgreSQL: a transaction-level advisory lock, taken first (so writes
    never wait on each other's rows, and never deadlock on them); SQLite has one writer at a
    time already (``BEGIN IMMEDIATE``)."""
    with transaction.atomic():
        connection = transaction.get_connection()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_ID])
        yield


def _store(
    row: IndexedSecret,
    version_id: str,
    classified: documents.Classified,
    facts: Mapping[Place, CellFacts],
    changes: Mapping[Place, Change],
) -> None:
    """Replace the secret's cells with ``facts`` of ``version_id`` (one transaction)."""
    row.version_id = version_id
    row.kind = classified.kind
    row.read_error = ""
    if classified.conforming:
        row.environments = documents.environments(classified.document)
        row.layout = _layout(classified.document)
    else:
        row.environments, row.layout = [], {}
    row.indexed_at = timezone.now()
    cells = [
        IndexCell(
            secret=row,
            version_id=version_id,
            environment=place[0],
            service=place[1],
            key=place[2],
            value_type=f.value_type,
            fingerprint=f.fingerprint,
            empty=f.empty,
            credential=f.credential,
            changed_at=changes[place].at,
            changed_how=changes[place].how.value,
            changed_version=changes[place].version_id,
            changed_by=changes[place].by[:150],
        )
        for place, f in facts.items()
    ]
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with _index_write():
                row.save()
                before = _drop_cells(IndexCell.objects.filter(secret=row))
                for cell in cells:  # (ids of an attempt that was rolled back)
                    cell.pk = None
                IndexCell.objects.bulk_create(cells, batch_size=500)
                recount_shared(before | {c.fingerprint for c in cells if c.credential})
                bump_generation()
            return
        except OperationalError:
            # A lock conflict all the same (index writes take turns, see _index_write, but a
            # busy SQLite file or a deadlock PostgreSQL broke can still abort one): again.
            if attempt == STORE_ATTEMPTS or transaction.get_connection().in_atomic_block:
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 # nosec B311 - jitter


#: The index's generation, a new random token at every write: pages keep what they derive from
#: the index under it (names, fingerprints and dates only), so a kept result never outlives a
#: change. A token rather than a counter: a cleared or evicted cache never brings back an old one.
GENERATION_KEY = "portal:index:generation"


def generation() -> str:
    """The current generation token (a new one is made when the cache has none)."""
    value = cache.get(GENERATION_KEY)
    if not isinstance(value, str):
        cache.add(GENERATION_KEY, uuid.uuid4().hex, None)
        value = cache.get(GENERATION_KEY)
    return str(value)


def bump_generation() -> None:
    """Mark everything derived from the index out of date: now, and again when the transaction
    commits (a page computed in between, from the rows before the commit, is not kept)."""

    def bump() -> None:
        cache.set(GENERATION_KEY, uuid.uuid4().hex, None)

    bump()
    transaction.on_commit(bump)


def _drop_cells(cells: QuerySet[IndexCell]) -> set[str]:
    """Delete ``cells``; return the fingerprints of the credentials among them (to recount)."""
    fps = set(cells.filter(credential=True).values_list("fingerprint", flat=True))
    cells.delete()
    return fps


def recount_shared(fingerprints: Iterable[str]) -> None:
    """Set ``shared`` on the credential cells holding ``fingerprints``: true where more than one
    credential cell holds the fingerprint. Two queries per 500 fingerprints. Exact only inside
    :func:`_index_write` (it counts committed rows, and writes only the flags that change)."""
    wanted = sorted(set(fingerprints))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        held = IndexCell.objects.filter(credential=True, fingerprint__in=chunk)
        multi = set(
            held.values("fingerprint")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values_list("fingerprint", flat=True)
        )
        # Only rows whose flag changes are written (and locked): two saves sharing a credential
        # then rarely touch the same rows.
        held.filter(fingerprint__in=sorted(multi), shared=False).update(shared=True)
        held.exclude(fingerprint__in=sorted(multi)).filter(shared=True).update(shared=False)


def _known(row: IndexedSecret | None) -> dict[Place, IndexCell]:
    if row is None or row.pk is None:
        return {}
    return {(c.environment, c.service, c.key): c for c in row.cells.all()}


def _inherit(cell: IndexCell) -> Change:
    return Change(
        cell.changed_at, ChangedHow(cell.changed_how), cell.changed_version, cell.changed_by
    )


def _portal_writes(name: str, versions: Iterable[str]) -> dict[str, AuditEvent]:
    """The portal's succeeded write events that created the given versions, by version id."""
    wanted = [v for v in set(versions) if v]
    if not wanted:
        return {}
    events = AuditEvent.objects.filter(secret=name, outcome="succeeded", new_version__in=wanted)
    return {e.new_version: e for e in events.order_by("seq")}


def _with_audit(name: str, changes: dict[Place, Change]) -> dict[Place, Change]:
    """Cells whose version the portal wrote get the audit event's time and person."""
    events = _portal_writes(
        name, (c.version_id for c in changes.values() if c.how is not ChangedHow.SINCE)
    )
    out = {}
    for place, change in changes.items():
        event = events.get(change.version_id) if change.how is not ChangedHow.SINCE else None
        if event is None:
            out[place] = change
        else:
            out[place] = Change(event.created, ChangedHow.PORTAL, change.version_id, _actor(event))
    return out


def _actor(event: AuditEvent) -> str:
    return event.actor_username or event.actor_email


def record_write(*, name: str, version_id: str, document: Mapping[str, Any]) -> None:
    """Index the version a portal save just made current: no AWS call.

    ``document`` is the saved, conforming document (its values are reduced to fingerprints
    here and dropped). Cells whose fingerprint equals the indexed one keep their ``changed_at``;
    the others changed now, by the person of the save's audit event (``changed_how="portal"``).
    Raises ``django.db.DatabaseError`` (the caller's save has landed: log and go on).
    """
    facts = cell_facts(document)
    row = IndexedSecret.objects.filter(name=name).first()
    known = _known(row)
    event = _portal_writes(name, [version_id]).get(version_id)
    when = event.created if event else timezone.now()
    who = _actor(event) if event else ""
    changes = {
        place: (
            _inherit(known[place])
            if place in known and known[place].fingerprint == f.fingerprint
            else Change(when, ChangedHow.PORTAL, version_id, who)
        )
        for place, f in facts.items()
    }
    if row is None:
        row = IndexedSecret(name=name, unified=name.endswith(settings.PORTAL_SECRET_SUFFIX))
    row.version_created = when
    row.last_changed = when
    _store(row, version_id, documents.Classified("conforming", document=document), facts, changes)


# --------------------------------------------------------------------------------------------
# Reading from AWS


@dataclass(frozen=True)
class _Version:
    version_id: str
    created: datetime | None
    stages: tuple[str, ...]


def _versions_newest_first(name: str) -> list[_Version]:
    """``ListSecretVersionIds``, newest first by ``CreatedDate``; ties (moto dates versions to
    the second) fall back on the listing order, reversed (AWS and moto list oldest first)."""
    listed = aws.list_versions(name)
    rows = [
        (
            _Version(
                str(v["VersionId"]), v.get("CreatedDate"), tuple(v.get("VersionStages") or ())
            ),
            i,
        )
        for i, v in enumerate(listed)
    ]
    rows.sort(key=lambda r: (r[0].created.timestamp() if r[0].created else 0.0, r[1]), reverse=True)
    return [r[0] for r in rows]


def _is_live(version: _Version) -> bool:
    """Whether a version may have been the live value: not a proposal or staging only."""
    labels = set(version.stages)
    if aws.CURRENT in labels or aws.PREVIOUS in labels or not labels:
        return True
    return not (labels & set(_NOT_LIVE) or any(label.startswith("CR-") for label in labels))


def _date_cells(
    name: str,
    current: _Version,
    facts: Mapping[Place, CellFacts],
    older: Sequence[_Version],
    known: Mapping[Place, IndexCell],
    known_version: str,
    limit: int,
) -> tuple[dict[Place, Change], int]:
    """When each cell of ``current`` took its value: walk ``older`` (newest first) comparing
    fingerprints, reading at most ``limit`` versions; the indexed version (``known_version``)
    is not read again, its cells' dates are inherited. Returns the changes and the reads made."""
    unresolved = set(facts)
    out: dict[Place, Change] = {}
    newer = current
    reads = 0
    exhausted = True
    for version in older:
        if not unresolved:
            break
        if version.version_id == known_version and known:
            for place in unresolved:
                cell = known.get(place)
                same = cell is not None and cell.fingerprint == facts[place].fingerprint
                out[place] = (
                    _inherit(cell)
                    if same and cell is not None
                    else Change(newer.created, ChangedHow.HISTORY, newer.version_id)
                )
            unresolved = set()
            break
        if reads >= limit:
            exhausted = False
            break
        try:
            value = aws.read_version(name, version.version_id)
        except aws.AwsError:
            exhausted = False  # gone or unreadable: what came before is unknown
            break
        reads += 1
        classified = _classify(value)
        del value  # the value goes no further than this loop
        before = cell_facts(classified.document) if classified.conforming else {}
        for place in list(unresolved):
            prior = before.get(place)
            if prior is None or prior.fingerprint != facts[place].fingerprint:
                out[place] = Change(newer.created, ChangedHow.HISTORY, newer.version_id)
                unresolved.discard(place)
        newer = version
    for place in unresolved:
        if exhausted:
            out[place] = Change(newer.created, ChangedHow.CREATED, newer.version_id)
        else:
            out[place] = Change(newer.created, ChangedHow.SINCE)
    return out, reads


def _apply_meta(row: IndexedSecret, meta: aws.SecretMeta) -> bool:
    """Copy listing metadata onto ``row``; True when anything changed (or the row is new)."""
    fields = {
        "unified": meta.name.endswith(settings.PORTAL_SECRET_SUFFIX),
        "last_changed": meta.last_changed,
        "rotation_enabled": meta.rotation_enabled,
        "next_rotation": meta.next_rotation,
        "pending_versions": list(meta.pending_versions),
        "deleted_date": meta.deleted_date,
        "owning_service": meta.owning_service,
    }
    if fields["unified"] and not meta.current_version and not meta.scheduled_for_deletion:
        fields["kind"] = NO_VALUE  # created without a value: nothing to read
    changed = row.pk is None
    for field, value in fields.items():
        if getattr(row, field) != value:
            setattr(row, field, value)
            changed = True
    return changed


def _index_current(row: IndexedSecret, meta: aws.SecretMeta) -> int:
    """Read ``meta``'s current version (and, bounded, the versions before it) into the index.
    Returns the ``GetSecretValue`` calls made. Raises :class:`~secrets_admin.aws.AwsError`."""
    versions = _versions_newest_first(meta.name)
    current = next((v for v in versions if v.version_id == meta.current_version), None)
    if current is None:  # listed but gone since (or ListSecrets lagging): try again next time
        raise aws.SecretNotFound(secret=meta.name)
    value = aws.read_version(meta.name, current.version_id)
    classified = _classify(value)
    del value
    facts = cell_facts(classified.document) if classified.conforming else {}
    start = versions.index(current) + 1
    older = [v for v in versions[start:] if _is_live(v)]
    known = _known(row)
    changes, reads = _date_cells(
        meta.name,
        current,
        facts,
        older,
        known,
        row.version_id,
        settings.PORTAL_INDEX_HISTORY_VERSIONS,
    )
    row.version_created = current.created
    _store(row, current.version_id, classified, facts, _with_audit(meta.name, changes))
    return 1 + reads


@dataclass(frozen=True)
class RefreshResult:
    """One refresh: secrets listed, unified secrets (re)read, ``GetSecretValue`` calls made,
    rows dropped (secrets gone from the account), and the secrets that could not be read."""

    listed: int
    indexed: int
    values_read: int
    dropped: int
    unreadable: tuple[str, ...] = ()


def refresh(
    secrets: Sequence[aws.SecretMeta],
    *,
    force: bool = False,
    retry_errors: bool = False,
    keep_alive: Callable[[], object] | None = None,
) -> RefreshResult:
    """Bring the index in line with a complete listing of the account (every secret, legacy
    ones included: a secret missing from ``secrets`` is dropped from the index).

    A unified secret is read only when its ``AWSCURRENT`` version differs from the indexed one
    (or ``force``; or ``retry_errors`` and its last read failed); secrets scheduled for deletion
    or without a value are not read.
    ``keep_alive`` is called after each secret read (the listing's lock). A secret that cannot
    be read keeps its previous cells and records why in ``read_error``; never raises
    :class:`~secrets_admin.aws.AwsError`.
    """
    existing = {row.name: row for row in IndexedSecret.objects.all()}
    changed_meta = False
    now = timezone.now()
    listed = {m.name for m in secrets}
    to_read: list[tuple[IndexedSecret, aws.SecretMeta]] = []
    for meta in secrets:
        row = existing.get(meta.name) or IndexedSecret(name=meta.name, indexed_at=now)
        if _apply_meta(row, meta):
            row.save()  # only what changed: a warm refresh of a quiet account writes nothing
            changed_meta = True
        readable = row.unified and meta.current_version and not meta.scheduled_for_deletion
        retry = retry_errors and bool(row.read_error)
        if readable and (force or retry or row.version_id != meta.current_version):
            to_read.append((row, meta))
    gone = [name for name in existing if name not in listed]
    # Secrets gone from the account leave the index; those scheduled for deletion keep their row
    # (adoption counts them) but no cells: their credentials are no longer anyone's.
    deleting = [m.name for m in secrets if m.scheduled_for_deletion]
    dropped: set[str] = set()
    with _index_write():
        for start in range(0, max(len(gone), len(deleting)), 500):
            dropped |= _drop_cells(
                IndexCell.objects.filter(secret__name__in=deleting[start : start + 500])
            )
            # Read again if it is restored (RestoreSecret keeps the version).
            IndexedSecret.objects.filter(name__in=deleting[start : start + 500]).exclude(
                version_id=""
            ).update(version_id="", layout={}, environments=[])
            dropped |= _drop_cells(
                IndexCell.objects.filter(secret__name__in=gone[start : start + 500])
            )
            IndexedSecret.objects.filter(name__in=gone[start : start + 500]).delete()
        if dropped or gone:
            recount_shared(dropped)
            bump_generation()
    if changed_meta:
        bump_generation()
    reads = 0
    unreadable = []
    for row, meta in to_read:
        try:
            reads += _index_current(row, meta)
        except aws.AwsError as exc:
            unreadable.append(meta.name)
            row.read_error = exc.message[:500]
            row.save(update_fields=["read_error"])
        if keep_alive is not None:
            keep_alive()
    return RefreshResult(len(secrets), len(to_read), reads, len(gone), tuple(unreadable))


def scan(*, force: bool = False) -> RefreshResult:
    """List the whole account (``ListSecrets``, every secret) and :func:`refresh` the index from
    it, reading again the secrets whose last read failed (``manage.py secrets_scan``). Raises :class:`~secrets_admin.aws.AwsError` when the
    account cannot be listed."""
    return refresh(list(aws.iter_secrets()), force=force, retry_errors=True)
