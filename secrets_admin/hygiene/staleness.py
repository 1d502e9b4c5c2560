"""Stale credentials: credential cells unchanged for longer than their environment allows
(``PORTAL_STALE_DAYS``, first matching pattern wins), each environment an index range on
``(credential, environment, changed_at)``; rotation-enabled secrets and leftover ``AWSPENDING``
versions. Dates and names only.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import documents, hygiene
from ..index import ChangedHow
from ..models import IndexCell


@lru_cache(maxsize=8)
def _parse_stale_days(config: str) -> tuple[tuple[str, int], ...]:
    rules = []
    for part in config.split(","):
        if not part.strip():
            continue
        pattern, sep, days = part.partition("=")
        if not sep or not pattern.strip() or not days.strip().isdigit():
            raise ImproperlyConfigured(
                f"PORTAL_STALE_DAYS: {part.strip()!r} is not '<environment or pattern>=<days>' "
                "(e.g. 'main=90,*=180')."
            )
        rules.append((pattern.strip(), int(days)))
    return tuple(rules)


def stale_days() -> tuple[tuple[str, int], ...]:
    """``PORTAL_STALE_DAYS`` as ``(environment pattern, days)``, first match wins. Raises
    ``ImproperlyConfigured`` naming the malformed part."""
    return _parse_stale_days(settings.PORTAL_STALE_DAYS)


def days_for(environment: str) -> int | None:
    """How many days a credential of ``environment`` may stay unchanged (``None``: no limit)."""
    return next((d for p, d in stale_days() if fnmatch.fnmatchcase(environment, p)), None)


def environments_in(*, visible: hygiene.Visible) -> list[str]:
    """Every environment some indexed unified secret has (standard ones first)."""
    return hygiene.memo("environments", visible, lambda: _environments_in(visible))


def _environments_in(visible: hygiene.Visible) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(documents.STANDARD_ENVIRONMENTS)
    found: set[str] = set()
    for envs in (
        hygiene.secret_rows(visible).filter(unified=True).values_list("environments", flat=True)
    ):
        seen.update(dict.fromkeys(envs))
        found.update(envs)
    return [e for e in seen if e in found]


def stale_before(visible: hygiene.Visible, now: datetime) -> dict[str, datetime]:
    """Per environment of the index that has a limit (:func:`days_for`): cells changed before
    this time are stale."""
    limits = {}
    for env in environments_in(visible=visible):
        days = days_for(env)
        if days is not None:
            limits[env] = now - timedelta(days=days)
    return limits


def stale_filter(limits: dict[str, datetime]) -> Q:
    """Per environment, cells changed before its limit (each an index range on
    ``(credential, environment, changed_at)``)."""
    stale = Q(pk__in=[])
    for env, before in limits.items():
        stale |= Q(environment=env, changed_at__lt=before)
    return stale


@dataclass(frozen=True)
class StaleCell:
    place: hygiene.Place
    changed_at: datetime
    how: str
    changed_by: str
    age_days: int
    limit_days: int

    @property
    def how_label(self) -> str:
        try:
            return ChangedHow(self.how).label
        except ValueError:
            return self.how


@dataclass
class Staleness:
    """Credentials due for rotation (oldest first, at most ``limit`` shown of ``total``), per
    environment counts, rotation-enabled secrets with their next rotation, and secrets holding a
    leftover ``AWSPENDING`` version."""

    cells: list[StaleCell]
    total: int
    by_environment: dict[str, int]
    rotation: list[tuple[str, datetime | None]]  # (secret, next rotation)
    pending: list[tuple[str, list[str]]]  # (secret, AWSPENDING version ids)
    rules: tuple[tuple[str, int], ...]


def stale_cells(visible: hygiene.Visible, now: datetime) -> QuerySet[IndexCell]:
    """The stale credential cells ``visible`` allows, as of ``now``."""
    return hygiene.cell_rows(visible).filter(
        stale_filter(stale_before(visible, now)), credential=True
    )


def staleness(
    *,
    visible: hygiene.Visible,
    now: datetime | None = None,
    limit: int = 100,
    environment: str = "",
) -> Staleness:
    """Stale credentials from the index: per environment one count and one ordered read of its
    ``limit`` oldest (an index range each), and the secrets' rotation metadata. Without ``now``
    the report is kept in the cache for up to ``CACHE_SECONDS`` or until the index changes."""
    # Kept for the known environments only: a query naming any other one is answered afresh,
    # so requests cannot grow this process's memory.
    if now is None and (not environment or environment in environments_in(visible=visible)):
        return hygiene.memo(
            "staleness",
            visible,
            lambda: _staleness(visible, timezone.now(), limit, environment),
            str(limit),
            environment,
        )
    return _staleness(visible, now or timezone.now(), limit, environment)


def _staleness(visible: hygiene.Visible, now: datetime, limit: int, environment: str) -> Staleness:
    limits = stale_before(visible, now)
    by_env = {}
    for env, before in limits.items():  # one indexed count per environment
        n = (
            hygiene.cell_rows(visible)
            .filter(credential=True, environment=env, changed_at__lt=before)
            .count()
        )
        if n:
            by_env[env] = n
    rows: list[tuple[Any, ...]] = []
    for env, before in limits.items():  # the oldest of each environment (index range, in order)
        if environment and env != environment:
            continue
        rows.extend(
            hygiene.cell_rows(visible)
            .filter(credential=True, environment=env, changed_at__lt=before)
            .order_by("changed_at")
            .values_list(
                "changed_at",
                "secret__name",
                "environment",
                "service",
                "key",
                "changed_how",
                "changed_by",
            )[:limit]
        )
    rows.sort(key=lambda r: (r[0], r[1:]))
    cells = []
    for at, name, env, service, key, how, by in rows[:limit]:
        cells.append(
            StaleCell(
                hygiene.Place(name, env, service, key),
                at,
                how,
                by,
                (now - at).days,
                days_for(env) or 0,
            )
        )
    secrets = hygiene.secret_rows(visible).filter(deleted_date__isnull=True)
    rotation = [
        (name, when)
        for name, when in secrets.filter(rotation_enabled=True)
        .order_by("next_rotation", "name")
        .values_list("name", "next_rotation")
    ]
    pending = [(n, v) for n, v in secrets.values_list("name", "pending_versions") if v]
    total = sum(by_env.values()) if not environment else by_env.get(environment, 0)
    return Staleness(cells, total, by_env, rotation, pending, stale_days())
