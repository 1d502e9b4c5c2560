"""Credential hygiene across the account, read from the index (``index.py``) with no AWS call.
Names, fingerprints and dates only, never a value. One module per report:

* ``hygiene.matrix``: repositories x services (and its CSV);
* ``hygiene.reuse``: credentials held in more than one environment or repository, and the grid's
  "same value as ..." markers;
* ``hygiene.staleness``: credentials unchanged for longer than ``PORTAL_STALE_DAYS``, rotation;
* ``hygiene.adoption``: each repository's adoption of the standard, and all of the above as
  compliance findings.

This package holds what they share: the person's scope (:data:`Visible`), the per-process
cache of derived results (:func:`memo`), the index's rows, :class:`Place`, the index's state.

Every function takes ``visible``: the secrets the person may see
(:func:`~secrets_admin.permissions.visible_secret_names`; ``None`` = all). A secret outside it
does not exist here: it is neither shown nor counted, nor named as the other side of a reuse.

Rules, with the part of the unified-secrets standard behind each:

==============================  =======  =========================================================
rule                            default  why
==============================  =======  =========================================================
reuse.production-elsewhere      error    a production credential also in another environment:
                                         the standard keeps separate credentials per environment
reuse.across-environments       warning  two non-production environments share a credential
reuse.across-repositories       warning  one credential shared by two repositories' secrets
stale.credential                warning  unchanged for longer than ``PORTAL_STALE_DAYS``
empty.production-credential     error    an empty production value: the app gets "" at runtime
==============================  =======  =========================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db.models import Count, Max, QuerySet

from .. import index, permissions
from ..models import IndexCell, IndexedSecret

Visible = frozenset[str] | None


#: How long a derived result may be served at most; any index write makes it out of date at
#: once (``index.generation``), this bounds "now" drifting for staleness.
CACHE_SECONDS = 60

T = TypeVar("T")

# This process's derived results: (name, parts) -> (generation, expiry, value). Kept in process
# memory, not the shared cache: unpickling 2,000 rows from it would cost what computing them
# does (hygiene_bench); every instance computes once per index generation.
_derived: dict[tuple[str, ...], tuple[str, float, Any]] = {}
#: At most this many derived results per process (then they are computed afresh).
DERIVED_ENTRIES = 4096


def memo(name: str, visible: Visible, compute: Callable[[], T], *parts: str) -> T:
    """``compute()``, kept for this process until the index changes (or ``CACHE_SECONDS``) when
    it is about the whole account (names, fingerprints and dates only, never a value). Scoped
    results are computed each time: they differ per person."""
    if visible is not None:
        return compute()
    key = (name, *parts)
    generation = index.generation()
    hit = _derived.get(key)
    if hit is not None and hit[0] == generation and hit[1] > time.monotonic():
        return cast(T, hit[2])
    value = compute()
    if len(_derived) >= DERIVED_ENTRIES:  # per-secret results (the grid's reuse notes) add up
        _derived.clear()
    _derived[key] = (generation, time.monotonic() + CACHE_SECONDS, value)
    return value


def secret_rows(visible: Visible) -> QuerySet[IndexedSecret]:
    """The index's secret rows ``visible`` allows (all with ``None``)."""
    qs = IndexedSecret.objects.all()
    return qs if visible is None else qs.filter(name__in=sorted(visible))


def cell_rows(visible: Visible) -> QuerySet[IndexCell]:
    """The index's cell rows of the secrets ``visible`` allows (all with ``None``)."""
    qs = IndexCell.objects.all()
    return qs if visible is None else qs.filter(secret__name__in=sorted(visible))


@dataclass(frozen=True)
class IndexState:
    """How current the index is: unified secrets in it, how many wait for their first read,
    and when it was last written (``None`` when empty: run ``manage.py secrets_scan``)."""

    unified: int
    unread: int
    latest: datetime | None


def index_state(*, visible: Visible) -> IndexState:
    """Two queries over the secrets' rows (kept until the index changes)."""
    return memo("state", visible, lambda: _index_state(visible))


def _index_state(visible: Visible) -> IndexState:
    qs = secret_rows(visible).filter(unified=True)
    state = qs.aggregate(latest=Max("indexed_at"), unified=Count("id"))
    unread = qs.filter(version_id="", deleted_date__isnull=True).exclude(kind=index.NO_VALUE)
    return IndexState(state["unified"], unread.count(), state["latest"])


def repo_of(name: str) -> str:
    """A unified secret's repository: its name without ``PORTAL_SECRET_SUFFIX``."""
    suffix = settings.PORTAL_SECRET_SUFFIX
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


def is_production(environment: str) -> bool:
    """Production = a protected environment (``PORTAL_PROTECTED_ENVIRONMENTS``, default ``main``;
    the standard: ``main`` is production)."""
    return permissions.is_protected(environment)


# --------------------------------------------------------------------------------------------
# Cells and kinds, by name


@dataclass(frozen=True, order=True)
class Place:
    """One cell of one secret, by name."""

    secret: str
    environment: str
    service: str
    key: str

    @property
    def cell(self) -> str:
        return f"{self.environment}/{self.service}/{self.key}"

    @property
    def production(self) -> bool:
        return is_production(self.environment)

    def named_from(self, secret: str) -> str:
        """The cell as seen from ``secret``: ``dev/stripe/key``, or ``other-secrets: dev/...``."""
        return self.cell if self.secret == secret else f"{self.secret}: {self.cell}"


#: How a secret's kind reads in the service matrix and the adoption table.
KIND_LABELS = {
    "": "not read yet",
    index.NO_VALUE: "no value yet",
    "not_json": "not JSON",
    "non_standard": "not the standard's structure",
    "empty": "empty value",
    "binary": "binary value",
}
