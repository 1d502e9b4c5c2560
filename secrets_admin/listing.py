"""The list of unified secrets: cached metadata, search, paging, and per-secret summaries.

Listing costs ceil(N/100) ``ListSecrets`` calls cold and none warm. The metadata (never values)
is kept in Django's cache (local memory, or Redis shared by every instance when ``CACHE_URL`` is
set) and served stale-while-revalidate:

* fresh for ``PORTAL_LIST_CACHE_SECONDS`` after it was fetched: served as it is;
* then stale, but kept for ``PORTAL_LIST_KEEP_SECONDS``: still served at once, while one
  background thread in one instance (a cache lock, ``cache.add``) lists AWS again;
* absent (the very first load, or after ``PORTAL_LIST_KEEP_SECONDS``): ``ListSecrets`` pages
  are read in the request for up to ``PORTAL_LIST_WAIT_SECONDS`` (at least one page); an account
  listed by then is shown at once, a larger one is finished in the background while the page
  shows progress (:class:`Progress`, polled by the list's status line).

The portal's own writes update their one entry of the shared listing (:func:`record_write`,
write-through), so a write never re-lists the account; the refresh button marks the listing
stale (:func:`invalidate`) rather than dropping it, so nobody waits for a cold listing again. Structure shown on the list (environments, services,
conformity) comes from :class:`~secrets_admin.models.SecretSummary`, recorded whenever the
portal reads a secret.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from django import db
from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from . import aws, documents, index
from .cache_lock import cache_lock
from .models import SecretSummary

logger = logging.getLogger(__name__)

#: The listing's stamp (:class:`Stamp`): small, read on every list view.
STAMP_KEY = "portal:listing:v3:stamp"
#: The listing itself (:class:`Listing`), under :func:`data_key`: large, read only when this
#: process lacks the listing its stamp names.
DATA_KEY = "portal:listing:v3:data"
#: Held by the one instance that is listing AWS (``cache.add``: atomic in Redis and locmem).
LOCK_KEY = "portal:listing:v3:lock"
#: :class:`Overlay`: the entries the portal's own writes changed since the listing was fetched.
OVERLAY_KEY = "portal:listing:v3:overlay"
#: :class:`Progress` of the running fetch, or the error that ended the last one.
PROGRESS_KEY = "portal:listing:v3:progress"
#: A fetch that stops touching its lock this long (a killed worker) frees it for another.
LOCK_SECONDS = 120
#: How often a background fetch reports its progress (seconds); the page polls every second.
PROGRESS_SECONDS = 0.5
#: Shown when a background fetch fails for a reason other than AWS (logged with its traceback).
UNEXPECTED = "Listing the secrets failed unexpectedly (see the portal's log). Refresh to try again."
#: After a failed fetch, the error is shown and no new background fetch starts for this long.
ERROR_SECONDS = 30


@dataclass(frozen=True)
class Listing:
    """Every unified secret's metadata (sorted by name), when the fetch finished (epoch
    seconds), how long it took (seconds) and how many secrets AWS listed in all."""

    secrets: list[aws.SecretMeta]
    fetched_at: float
    fetch_seconds: float = 0.0
    listed: int = 0
    #: How many write-throughs (:func:`record_write`) changed this listing since it was fetched
    #: (0 for a listing as AWS gave it; the revision of its :class:`Overlay` otherwise).
    revision: int = 0
    search_keys: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.search_keys:  # lower-cased "name\ndescription", built once per listing
            keys = [f"{m.name}\n{m.description}".lower() for m in self.secrets]
            object.__setattr__(self, "search_keys", keys)

    def __getstate__(self) -> dict[str, Any]:  # the cache holds no search keys: they are rebuilt
        return {**self.__dict__, "search_keys": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def fetched(self) -> datetime:
        """``fetched_at`` as an aware UTC datetime (for display)."""
        return datetime.fromtimestamp(self.fetched_at, UTC)

    @property
    def stamp(self) -> str:
        """``fetched_at`` (and the revision, once written through) as text: the page sends it
        back to learn whether a newer one exists."""
        return f"{self.fetched_at:.6f}" + (f"r{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class Stamp:
    """Which listing is current (its ``fetched_at``) and until when it is fresh."""

    fetched_at: float
    fresh_until: float
    revision: int = 0


@dataclass(frozen=True)
class Progress:
    """A fetch in progress: since when (epoch seconds) and how many secrets were listed so far;
    or, with ``error``, the user-facing message of the AWS error that ended it."""

    started_at: float
    count: int = 0
    error: str = ""


@dataclass(frozen=True)
class ListingState:
    """What the list page can show now: the listing (``None`` before the first fetch ends),
    whether it is stale, and the running or failed fetch (``None`` when none)."""

    listing: Listing | None
    stale: bool = False
    progress: Progress | None = None

    @property
    def fetching(self) -> bool:
        return self.progress is not None and not self.progress.error


# This process's copies: the last listing it unpickled (keyed by ``fetched_at``) and the last
# listing it built with the write-throughs on top (keyed by ``fetched_at`` and revision). A warm
# list view reads the small stamp from the cache; it unpickles the listing (10,000 entries: tens
# of ms) only when a new listing was fetched, and reads the small overlay only after a write.
_memo_base: tuple[float, Listing] | None = None
_memo: tuple[tuple[float, int], Listing] | None = None


@dataclass(frozen=True)
class Overlay:
    """The write-throughs since the listing fetched at ``fetched_at``: each written secret's
    newest metadata by name, and the revision of the last one. Kept apart from the listing, so a
    write stores one small entry instead of the whole listing again."""

    fetched_at: float
    revision: int
    entries: dict[str, aws.SecretMeta] = field(default_factory=dict)
    #: When each entry was written through (epoch seconds), by name.
    written: dict[str, float] = field(default_factory=dict)


def data_key(fetched_at: float) -> str:
    """Where the listing fetched at ``fetched_at`` is kept. One key per listing: a reader that
    read the stamp just before a new listing was stored still finds the listing it names."""
    return f"{DATA_KEY}:{fetched_at:.6f}"


def _base(fetched_at: float) -> Listing | None:
    global _memo_base
    memo = _memo_base
    if memo is not None and memo[0] == fetched_at:
        return memo[1]
    data = cache.get(data_key(fetched_at))
    if not isinstance(data, Listing) or data.fetched_at != fetched_at:
        return None
    _memo_base = (fetched_at, data)
    return data


def _overlay(fetched_at: float) -> Overlay | None:
    overlay = cache.get(OVERLAY_KEY)
    if isinstance(overlay, Overlay) and overlay.fetched_at == fetched_at:
        return overlay
    return None


def _merge(base: Listing, overlay: Overlay) -> Listing:
    """``base`` with ``overlay``'s entries put in place (a name not listed yet is inserted in
    order): O(listing) list copies, no pickling."""
    secrets = list(base.secrets)
    keys = list(base.search_keys)
    names = [m.name for m in secrets]
    added = 0
    for name, meta in sorted(overlay.entries.items()):
        at = bisect.bisect_left(names, name)
        key = f"{meta.name}\n{meta.description}".lower()
        if at < len(names) and names[at] == name:
            secrets[at], keys[at] = meta, key
        else:
            secrets.insert(at, meta)
            keys.insert(at, key)
            names.insert(at, name)
            added += 1
    return Listing(
        secrets,
        base.fetched_at,
        base.fetch_seconds,
        base.listed + added,
        revision=overlay.revision,
        search_keys=keys,
    )


def _cached() -> tuple[Listing | None, Stamp | None]:
    global _memo
    stamp = cache.get(STAMP_KEY)
    if not isinstance(stamp, Stamp):
        return None, None
    base = _base(stamp.fetched_at)
    if base is None:
        return None, None
    if not stamp.revision:
        return base, stamp
    memo = _memo
    if memo is not None and memo[0] == (stamp.fetched_at, stamp.revision):
        return memo[1], stamp
    overlay = _overlay(stamp.fetched_at)
    if overlay is None:  # evicted: the entries written through wait for the next listing
        return base, stamp
    merged = _merge(base, overlay)
    _memo = ((stamp.fetched_at, overlay.revision), merged)
    return merged, stamp


def _keep_seconds() -> int:
    return int(max(settings.PORTAL_LIST_KEEP_SECONDS, settings.PORTAL_LIST_CACHE_SECONDS))


def _store(listing: Listing, *, started_at: float) -> Listing:
    """Store a listing just fetched from AWS, listed since ``started_at`` (epoch seconds), and
    return it as it is served. The write-throughs made while it was listed stay on top of it
    (AWS may have listed their page before the write: a secret created then would vanish from
    the list until the next listing); the older ones are dropped (it lists them itself)."""
    keep = _keep_seconds()
    cache.set(data_key(listing.fetched_at), listing, keep)
    old = cache.get(OVERLAY_KEY)
    carried = Overlay(listing.fetched_at, 1)
    if isinstance(old, Overlay):
        written = {n: at for n, at in old.written.items() if at >= started_at and n in old.entries}
        entries = {n: old.entries[n] for n in written}
        carried = Overlay(listing.fetched_at, 1, entries, written)
    fresh_until = listing.fetched_at + settings.PORTAL_LIST_CACHE_SECONDS
    if not carried.entries:
        cache.delete(OVERLAY_KEY)
        cache.set(STAMP_KEY, Stamp(listing.fetched_at, fresh_until), keep)
        return listing
    cache.set(OVERLAY_KEY, carried, keep)
    cache.set(STAMP_KEY, Stamp(listing.fetched_at, fresh_until, carried.revision), keep)
    return _merge(listing, carried)


class _Fetch:
    """One listing of the account, page by page (one ``ListSecrets`` call per :meth:`step`)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.token: str | None = None
        self.listed = 0
        self.secrets: list[aws.SecretMeta] = []
        self.everything: list[aws.SecretMeta] = []  # legacy secrets too, for the hygiene index
        self.index = False  # re-index changed versions after listing (background refresh only)

    def step(self) -> bool:
        """Read the next page; True when it was the last. Raises :class:`~aws.AwsError`."""
        metas, self.token = aws.list_secrets_page(self.token)
        self.listed += len(metas)
        self.everything.extend(metas)
        suffix = settings.PORTAL_SECRET_SUFFIX
        self.secrets.extend(m for m in metas if m.name.endswith(suffix))
        return self.token is None

    def finish(self) -> Listing:
        now = time.time()
        self.secrets.sort(key=lambda m: m.name)
        listing = Listing(self.secrets, now, now - self.started_at, self.listed)
        with _write_lock():  # (stored even without it: a whole listing is never out of date)
            return _store(listing, started_at=self.started_at)

    def progress(self) -> Progress:
        return Progress(self.started_at, self.listed)

    def reindex(self) -> None:
        """Re-read the secrets whose version changed into the hygiene index; a failure there is
        logged and leaves the (already stored) listing alone."""
        try:
            index.refresh(self.everything, keep_alive=lambda: cache.touch(LOCK_KEY, LOCK_SECONDS))
        except Exception:  # a thread's failure would otherwise vanish
            logger.exception("indexing after the listing refresh failed")

    def run(self, lock: str) -> None:
        """Page to the end (in a background thread), reporting progress into the cache."""
        try:
            reported = time.monotonic()
            while not self.step():
                # Report (and keep the lock) twice a second, not per page: each cache write is a
                # round trip to Redis, which a busy machine makes costly (make bench showed it).
                if time.monotonic() - reported >= PROGRESS_SECONDS:
                    cache.set(PROGRESS_KEY, self.progress(), LOCK_SECONDS)
                    cache.touch(LOCK_KEY, LOCK_SECONDS)
                    reported = time.monotonic()
            self.finish()
            cache.delete(PROGRESS_KEY)
            if self.index:  # the list is already served; the lock keeps one indexer running
                self.reindex()
        except aws.AwsError as exc:
            cache.set(PROGRESS_KEY, replace(self.progress(), error=exc.message), ERROR_SECONDS)
        except Exception:  # a thread's failure would otherwise vanish: log it, tell the page
            logger.exception("listing AWS in the background failed")
            failed = replace(self.progress(), error=UNEXPECTED)
            with contextlib.suppress(Exception):  # the cache itself may be what failed
                cache.set(PROGRESS_KEY, failed, ERROR_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                _unlock(lock)


def _lock() -> str | None:
    token = uuid.uuid4().hex
    return token if cache.add(LOCK_KEY, token, LOCK_SECONDS) else None


def _unlock(token: str) -> None:
    if cache.get(LOCK_KEY) == token:
        cache.delete(LOCK_KEY)


def _spawn(work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread (tests replace this to run it inline or record it)."""

    def target() -> None:
        try:
            work()
        finally:  # the hygiene index used this thread's own database connection
            db.connections.close_all()

    threading.Thread(target=target, name="portal-listing-fetch", daemon=True).start()


def _progress() -> Progress | None:
    progress = cache.get(PROGRESS_KEY)
    return progress if isinstance(progress, Progress) else None


def refresh_in_background() -> bool:
    """Start listing AWS in a background thread unless an instance already is; True if started.

    The fetch replaces the cached listing when it ends; until then the old one is served.
    """
    lock = _lock()
    if lock is None:
        return False
    fetch = _Fetch()
    fetch.index = settings.PORTAL_INDEX_ON_REFRESH  # read now, not when the thread gets there
    cache.set(PROGRESS_KEY, fetch.progress(), LOCK_SECONDS)
    _spawn(lambda: fetch.run(lock))
    return True


def listing_state(*, retry_failed: bool = True) -> ListingState:
    """The listing to show now, never waiting for more than one ``ListSecrets`` call.

    Fresh: served as cached. Stale: served as cached, and a background refresh is started (once
    across instances; not again for ``ERROR_SECONDS`` after one failed). Absent: pages are read
    here for up to ``PORTAL_LIST_WAIT_SECONDS`` (at least one); when the listing ends in that
    time it is returned, otherwise the rest is read in the background and ``listing`` is ``None``
    with the :class:`Progress` so far; after a failed first listing, a new one is started unless
    ``retry_failed`` is false (the status line reports the failure instead). Raises
    :class:`~secrets_admin.aws.AwsError` only when a page read here fails.
    """
    listing, stamp = _cached()
    if listing is not None and stamp is not None:
        stale = time.time() >= stamp.fresh_until
        progress = _progress()
        if stale and progress is None:
            refresh_in_background()
            progress = _progress()
        return ListingState(listing, stale=stale, progress=progress)
    progress = _progress()
    if progress is not None and progress.error:
        if not retry_failed:
            return ListingState(None, progress=progress)
        if cache.get(LOCK_KEY) is None:
            cache.delete(PROGRESS_KEY)  # asked again after a failure: try again now
            progress = None
    lock = _lock()
    if lock is None:  # another request or instance is listing right now
        return ListingState(None, progress=progress or Progress(time.time()))
    fetch = _Fetch()
    try:
        done = fetch.step()
        while not done and time.time() - fetch.started_at < settings.PORTAL_LIST_WAIT_SECONDS:
            done = fetch.step()
    except aws.AwsError:
        _unlock(lock)
        raise
    if done:
        _unlock(lock)
        return ListingState(fetch.finish())
    cache.set(PROGRESS_KEY, fetch.progress(), LOCK_SECONDS)
    _spawn(lambda: fetch.run(lock))
    return ListingState(None, progress=fetch.progress())


def get_listing(*, refresh: bool = False) -> Listing:
    """The cached listing (fresh or stale), or a complete fetch made now when there is none or
    ``refresh`` is asked (commands that need every name, e.g. ``secrets_scan``).

    Raises :class:`~secrets_admin.aws.AwsError` when AWS must be asked and fails.
    """
    if not refresh:
        listing, _ = _cached()
        if listing is not None:
            return listing
    fetch = _Fetch()
    while not fetch.step():
        pass
    return fetch.finish()


def invalidate() -> None:
    """Mark the cached listing stale after the portal itself created or changed a secret: the
    next list view still shows it at once and refreshes it in the background."""
    stamp = cache.get(STAMP_KEY)
    if isinstance(stamp, Stamp):
        cache.set(STAMP_KEY, replace(stamp, fresh_until=0.0), _keep_seconds())


#: Held while one write-through updates the shared listing (read, change one entry, store).
WRITE_LOCK_KEY = "portal:listing:v3:write"
#: How long a write-through waits for another one before giving up (see :func:`record_write`).
WRITE_WAIT_SECONDS = 5.0


def _write_lock() -> contextlib.AbstractContextManager[bool]:
    """Hold :data:`WRITE_LOCK_KEY` (True) while a write-through or a finished listing is
    stored, so neither overwrites the other; False after :data:`WRITE_WAIT_SECONDS`."""
    return cache_lock(WRITE_LOCK_KEY, seconds=LOCK_SECONDS, wait=WRITE_WAIT_SECONDS)


def record_write(name: str, version_id: str = "", *, meta: aws.SecretMeta | None = None) -> None:
    """Write-through after the portal itself created or changed ``name``: update its one entry
    of the shared listing instead of listing the account again (re-listing happens only on the
    ``PORTAL_LIST_CACHE_SECONDS`` timer or the refresh button).

    ``meta`` is the secret's metadata when the caller has it (from a ``DescribeSecret``);
    otherwise a known entry gets ``version_id`` as its current version and now as its last
    change, and a secret not in the listing (or a write that names no version, such as a
    scheduled deletion) costs one ``DescribeSecret``. Nothing happens when no listing is cached
    (the next list view lists AWS anyway). When other write-throughs hold the listing for more
    than :data:`WRITE_WAIT_SECONDS`, a secret already listed keeps its old entry until the
    timed listing (logged), and a new one marks the listing stale (:func:`invalidate`). A
    listing of AWS that started before this write and ends after it keeps this entry on top
    (its page may have been listed before the write; both store under one lock).

    Raises :class:`~secrets_admin.aws.AwsError` only when the ``DescribeSecret`` fails (the
    write itself has landed: callers log it and go on).
    """
    with _write_lock() as held:
        if held:
            _write_through(name, version_id, meta)
            return
    current, _ = _cached()
    if current is None or name not in {m.name for m in current.secrets}:
        invalidate()  # a new secret must not wait for the timer to be listed
    else:
        logger.warning("listing write-through of %s skipped: the listing is busy", name)


def _write_through(name: str, version_id: str, meta: aws.SecretMeta | None) -> None:
    stamp = cache.get(STAMP_KEY)
    if not isinstance(stamp, Stamp):
        return
    base = _base(stamp.fetched_at)
    if base is None:
        return
    overlay = _overlay(stamp.fetched_at) or Overlay(stamp.fetched_at, stamp.revision)
    known = overlay.entries.get(name)
    if known is None:
        at = bisect.bisect_left(base.secrets, name, key=lambda m: m.name)
        if at < len(base.secrets) and base.secrets[at].name == name:
            known = base.secrets[at]
    if meta is None:
        if known is not None and version_id:
            meta = replace(known, current_version=version_id, last_changed=datetime.now(UTC))
        else:
            meta = aws.describe(name).meta
    if known is None and not name.endswith(settings.PORTAL_SECRET_SUFFIX):
        return
    revision = max(overlay.revision, stamp.revision) + 1
    keep = _keep_seconds()
    written = {**overlay.written, name: time.time()}
    updated = Overlay(stamp.fetched_at, revision, {**overlay.entries, name: meta}, written)
    cache.set(OVERLAY_KEY, updated, keep)
    cache.set(STAMP_KEY, replace(stamp, revision=revision), keep)


def search(listing: Listing, query: str) -> list[aws.SecretMeta]:
    """Secrets whose name or description contains ``query`` (case-insensitive)."""
    q = query.strip().lower()
    if not q:
        return listing.secrets
    return [m for m, k in zip(listing.secrets, listing.search_keys, strict=True) if q in k]


@dataclass(frozen=True)
class KeyMatch:
    """A secret whose structure has services or keys matching a search, as the portal last read
    it (``current``: the summary describes the version that is current now)."""

    name: str
    cells: list[tuple[str, str]]  # (service, key); key "" when the service alone matched
    current: bool


#: How many matching (service, key) pairs a search lists per secret.
KEY_MATCHES_SHOWN = 8


def search_keys(listing: Listing, query: str) -> list[KeyMatch]:
    """Secrets of ``listing`` whose services or keys match ``query`` (case-insensitive parts):
    ``service.key`` matches a key of a service, one word matches a service or a key name.

    Answered from the structure summaries the portal recorded when it last read each secret
    (:class:`~secrets_admin.models.SecretSummary`): one query, no AWS call; a secret the portal
    never read is not found until someone opens it or a scan reads it."""
    q = query.strip().lower()
    if not q:
        return []
    want_service, _, want_key = q.partition(".") if "." in q else (q, "", q)
    either = "." not in q
    current = {m.name: m.current_version for m in listing.secrets}
    out = []
    rows = SecretSummary.objects.filter(name__in=list(current)).values_list(
        "name", "version_id", "keys"
    )
    for name, version_id, keys in rows.order_by("name"):
        cells: list[tuple[str, str]] = []
        for service, names in (keys or {}).items():
            service_hit = want_service in service.lower()
            if either and service_hit:
                cells.append((service, ""))
                continue
            cells.extend(
                (service, key)
                for key in names
                if want_key in key.lower() and (either or service_hit)
            )
        if cells:
            out.append(KeyMatch(name, cells[:KEY_MATCHES_SHOWN], version_id == current[name]))
    return out


@dataclass(frozen=True)
class Status:
    """A badge on the list or grid: a short ``label``, a ``tone`` for styling, and ``detail``."""

    label: str
    tone: str
    detail: str = ""


def statuses(meta: aws.SecretMeta, summary: SecretSummary | None) -> list[Status]:
    """The badges of one secret, from listing metadata and (when current) its summary."""
    out: list[Status] = []
    if meta.scheduled_for_deletion:
        when = meta.deleted_date.date().isoformat() if meta.deleted_date else ""
        out.append(Status("scheduled for deletion", "danger", f"deletion date {when}"))
    if meta.is_replica(aws.region() if meta.primary_region else ""):
        out.append(Status("replica", "muted", f"read-only; primary region {meta.primary_region}"))
    if meta.rotation_enabled:
        out.append(Status("rotation enabled", "warn", "a rotation function also writes it"))
    if not meta.current_version and not meta.scheduled_for_deletion:
        out.append(Status("no value yet", "muted", "created without a value"))
    elif summary is not None and summary.version_id == meta.current_version:
        out.append(_kind_status(summary.kind, summary.reasons, summary.size_bytes))
    elif meta.current_version:
        out.append(Status("not read yet", "muted", "open it to check its structure"))
    return out


#: Rendered list rows of this process (:func:`row_html`), oldest first; bounded.
_rows: OrderedDict[tuple[Any, ...], SafeString] = OrderedDict()
ROW_MEMO_SIZE = 20_000


def row_html(meta: aws.SecretMeta, summary: SecretSummary | None) -> SafeString:
    """One ``<tr>`` of the list (``_secret_list_row.html``), rendered once per process for each
    distinct (metadata, summary) and then reused: a list page of 50 rows renders only the rows
    that changed since this worker last showed them. Names and badges only, never a value."""
    key: tuple[Any, ...] = (repr(meta),)
    if summary is not None:
        key += (
            summary.version_id,
            summary.kind,
            repr(summary.reasons),
            summary.size_bytes,
            repr(summary.environments),
            summary.service_count,
            repr(summary.missing_cells),
        )
    html = _rows.get(key)
    if html is not None:
        _rows.move_to_end(key)
        return html
    context = {"meta": meta, "summary": summary, "statuses": statuses(meta, summary)}
    # Autoescaped template output of names and badges.
    html = mark_safe(render_to_string("secrets_admin/_secret_list_row.html", context))  # noqa: S308 # nosec B308 B703
    _rows[key] = html
    if len(_rows) > ROW_MEMO_SIZE:
        _rows.popitem(last=False)
    return html


def _kind_status(kind: str, reasons: list[str], size: int) -> Status:
    if kind == "conforming":
        return Status("conforming", "ok")
    if kind == "binary":
        return Status("binary", "danger", f"{size} bytes of binary data")
    label = {"not_json": "not JSON", "empty": "empty"}.get(kind, "non-standard")
    return Status(label, "danger", "; ".join(reasons[:3]))


def remember(name: str, version_id: str, classified: documents.Classified) -> SecretSummary:
    """Record what a read of ``version_id`` showed of the secret's structure (names only).

    A version's value never changes (Secrets Manager versions are immutable), so a summary of the
    same version and kind is kept as it is: one query instead of a locked upsert per grid view.
    """
    known = SecretSummary.objects.filter(
        name=name, version_id=version_id, kind=classified.kind
    ).first()
    if known is not None:
        return known
    fields: dict[str, Any] = {
        "version_id": version_id,
        "kind": classified.kind,
        "reasons": list(classified.reasons),
        "size_bytes": classified.size_bytes,
        "environments": [],
        "service_count": 0,
        "missing_cells": {},
        "keys": {},
    }
    if classified.conforming:
        doc = classified.document
        grid = documents.grid(doc)
        fields["environments"] = grid.environments
        fields["service_count"] = len(documents.services(doc))
        fields["missing_cells"] = grid.missing_counts()
        keys: dict[str, list[str]] = {}
        for row in grid.rows:
            keys.setdefault(row.service, []).append(row.key)
        fields["keys"] = keys
    summary, _ = SecretSummary.objects.update_or_create(name=name, defaults=fields)
    return summary


def summaries_for(names: list[str]) -> dict[str, SecretSummary]:
    """Summaries of the given secrets, by name (one query)."""
    return {s.name: s for s in SecretSummary.objects.filter(name__in=names)}


def scan(names: list[str]) -> int:
    """Read each named secret once and remember its structure; return how many were read.

    Used by ``manage.py secrets_scan`` and the demo seed. Secrets that cannot be read are skipped.
    """
    read = 0
    for name in names:
        try:
            value = aws.read_current(name)
        except aws.AwsError:
            continue
        remember(name, value.version_id, classify_value(value))
        read += 1
    return read


def classify_value(value: aws.SecretValue) -> documents.Classified:
    """Classify a read version: binary values are sized, never decoded."""
    if value.binary is not None:
        return documents.classify_binary(len(value.binary))
    return documents.classify(value.text or "")
