"""Credential hygiene across the account, read from the index (``index.py``) with no AWS call:
the service matrix, reused credentials, stale credentials, and each repository's adoption of
the standard. Names, fingerprints and dates only, never a value.

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

import bisect
import csv
import fnmatch
import io
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from . import compliance, documents, index, permissions
from .index import ChangedHow
from .models import IndexCell, IndexedSecret

Visible = frozenset[str] | None
Status = Literal["ok", "fail", "unknown"]


#: How long a derived result may be served at most; any index write makes it out of date at
#: once (``index.generation``), this bounds "now" drifting for staleness.
CACHE_SECONDS = 60

T = TypeVar("T")

# This process's derived results: (name, parts) -> (generation, expiry, value). Kept in process
# memory, not the shared cache: unpickling 2,000 rows from it would cost what computing them
# does (hygiene_bench); every instance computes once per index generation.
_derived: dict[tuple[str, ...], tuple[str, float, Any]] = {}


def _memo(name: str, visible: Visible, compute: Callable[[], T], *parts: str) -> T:
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
    _derived[key] = (generation, time.monotonic() + CACHE_SECONDS, value)
    return value


def _secrets(visible: Visible) -> QuerySet[IndexedSecret]:
    qs = IndexedSecret.objects.all()
    return qs if visible is None else qs.filter(name__in=sorted(visible))


def _cells(visible: Visible) -> QuerySet[IndexCell]:
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
    return _memo("state", visible, lambda: _index_state(visible))


def _index_state(visible: Visible) -> IndexState:
    qs = _secrets(visible).filter(unified=True)
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
# Service matrix


@dataclass(frozen=True)
class MatrixCell:
    """One repository x service: the environments (in the filter) that have the service and how
    many keys it holds across them."""

    service: str
    environments: tuple[str, ...]
    keys: int

    @property
    def present(self) -> bool:
        return bool(self.environments)


@dataclass(frozen=True)
class MatrixRow:
    """One repository: its secret, its ``layout`` (``{environment: {service: keys}}``), the
    environments the filter looks at and the service columns; cells are built when shown."""

    repo: str
    secret: str
    layout: dict[str, dict[str, int]]
    environments: tuple[str, ...]
    columns: tuple[str, ...]
    status: str = ""  # why the secret has no cells: "no value yet", "not JSON"... ("" when read)

    def has(self, service: str) -> bool:
        return any(service in self.layout.get(e, {}) for e in self.environments)

    @property
    def cells(self) -> list[MatrixCell]:
        return [
            MatrixCell(
                s,
                tuple(e for e in self.environments if s in self.layout.get(e, {})),
                sum(self.layout.get(e, {}).get(s, 0) for e in self.environments),
            )
            for s in self.columns
        ]


@dataclass
class Matrix:
    """The service matrix: every known environment and service (for the filters), the service
    columns shown, and one row per repository."""

    environments: list[str]
    services: list[str]
    columns: list[str]
    rows: list[MatrixRow] = field(default_factory=list)


PRESENCE = ("", "present", "missing")


def service_matrix(
    *, visible: Visible, environment: str = "", service: str = "", presence: str = ""
) -> Matrix:
    """Repositories x services from the index (one query over the secrets' rows, none over
    cells). ``environment`` limits presence to one environment; ``service`` shows that column
    only; ``presence`` (``present`` / ``missing``, with a ``service``) keeps the repositories
    that have or lack it."""
    found = _memo(
        "layouts",
        visible,
        lambda: list(
            _secrets(visible)
            .filter(unified=True, deleted_date__isnull=True)
            .values_list("name", "layout", "kind")
        ),
    )
    environments: dict[str, None] = dict.fromkeys(documents.STANDARD_ENVIRONMENTS)
    services: set[str] = set()
    for _, layout, _ in found:
        environments.update(dict.fromkeys(layout))
        for per_env in layout.values():
            services.update(per_env)
    columns = (service,) if service else tuple(sorted(services))
    matrix = Matrix(list(environments), sorted(services), list(columns))
    for name, layout, kind in found:
        envs = (environment,) if environment else tuple(layout)
        status = "" if kind == "conforming" else KIND_LABELS.get(kind, kind)
        row = MatrixRow(repo_of(name), name, layout, envs, columns, status)
        if service and presence and row.has(service) != (presence == "present"):
            continue
        matrix.rows.append(row)
    return matrix


def matrix_csv(matrix: Matrix) -> str:
    """The matrix as CSV: ``repository, secret, <service>...``; a cell lists the environments
    that have the service (``-`` when none). Names only."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["repository", "secret", *matrix.columns])
    for row in matrix.rows:
        writer.writerow(
            [
                _csv_safe(row.repo),
                _csv_safe(row.secret),
                *(" ".join(c.environments) or "-" for c in row.cells),
            ]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """Keep a spreadsheet from reading a name as a formula (OWASP "CSV injection")."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --------------------------------------------------------------------------------------------
# Reused credentials


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


@dataclass(frozen=True)
class ReuseGroup:
    """Cells holding one value (equal fingerprints); ``problems`` are ``(severity, rule)``."""

    fingerprint: str
    places: tuple[Place, ...]
    problems: tuple[tuple[compliance.Severity, str], ...]

    @property
    def severity(self) -> compliance.Severity:
        return "error" if any(s == "error" for s, _ in self.problems) else "warning"

    @property
    def short(self) -> str:
        return documents.short(self.fingerprint)

    @property
    def secrets(self) -> list[str]:
        return sorted({p.secret for p in self.places})


def _problems(places: Sequence[Place]) -> list[tuple[compliance.Severity, str]]:
    out: list[tuple[compliance.Severity, str]] = []
    by_secret: dict[str, set[str]] = defaultdict(set)
    for p in places:
        by_secret[p.secret].add(p.environment)
    for envs in by_secret.values():
        prod = {e for e in envs if is_production(e)}
        if prod and envs - prod:
            out.append(("error", "reuse.production-elsewhere"))
        elif len(envs - prod) > 1:
            out.append(("warning", "reuse.across-environments"))
    if len(by_secret) > 1:
        out.append(("warning", "reuse.across-repositories"))
    return sorted(set(out), key=lambda p: (compliance.SEVERITIES.index(p[0]), p[1]))


def reuse_groups(*, visible: Visible) -> list[ReuseGroup]:
    """Every credential found in more than one environment or repository, errors first.
    Kept in the cache until the index changes (:func:`_memo`).

    One query: the credential cells whose fingerprint another holds (``IndexCell.shared``, kept
    by ``index.py``). Cells of one environment sharing a value (two keys, one value) are not
    reuse; with a scope, a group needs two visible places.
    """
    return _memo("reuse", visible, lambda: _reuse_groups(visible))


def _reuse_groups(visible: Visible) -> list[ReuseGroup]:
    rows = (
        _cells(visible)
        .filter(shared=True)
        .values_list("fingerprint", "secret__name", "environment", "service", "key")
    )
    grouped: dict[str, list[Place]] = defaultdict(list)
    for fp, *where in rows:
        grouped[fp].append(Place(*where))
    groups = []
    for fp, places in grouped.items():
        problems = _problems(places)
        if problems:
            ordered = sorted(places, key=lambda p: (p.secret, not p.production, p.cell))
            groups.append(ReuseGroup(fp, tuple(ordered), tuple(problems)))
    groups.sort(key=lambda g: (compliance.SEVERITIES.index(g.severity), g.secrets, g.places))
    return groups


def reuse_markers(
    *, name: str, version_id: str, visible: Visible
) -> dict[tuple[str, str, str], list[str]]:
    """For the grid of ``name`` at ``version_id``: ``(environment, service, key)`` -> the other
    visible cells holding the same credential (``dev/stripe/secret_key`` in this secret first,
    then ``other-secrets: main/stripe/secret_key``). Empty when the index describes another
    version (it is then out of date for this grid). Two queries, the second only when needed."""
    own = list(
        _cells(visible)
        .filter(secret__name=name, version_id=version_id, shared=True)
        .values_list("environment", "service", "key", "fingerprint")
    )
    if not own:
        return {}
    fps = {fp for *_, fp in own}
    others = (
        _cells(visible)
        .filter(shared=True, fingerprint__in=sorted(fps))
        .values_list("fingerprint", "secret__name", "environment", "service", "key")
        .order_by("secret__name", "environment", "service", "key")
    )
    holders: dict[str, list[Place]] = defaultdict(list)
    for fp, *where in others:
        holders[fp].append(Place(*where))
    out = {}
    for env, service, key, fp in own:
        # Another key of the same environment holding the value is not reuse (and not itself).
        same = [p for p in holders[fp] if not (p.secret == name and p.environment == env)]
        same.sort(key=lambda p: (p.secret != name, p.secret, not p.production, p.cell))
        if same:
            out[(env, service, key)] = [p.named_from(name) for p in same]
    return out


@dataclass(frozen=True)
class ReuseNote:
    """One cell of a grid that holds the same credential as other cells: ``cell``
    (``main/stripe/secret_key``), ``marker`` ("same value as dev/stripe/secret_key and 2
    more") and ``places``, every other place (for the marker's title). Names only."""

    cell: str
    marker: str
    places: str


def reuse_notes(*, name: str, version_id: str, visible: Visible) -> list[ReuseNote]:
    """The grid page's "same value as ..." markers for ``name`` at ``version_id`` (from
    :func:`reuse_markers`), in cell order. Kept apart from the grid's rows, which are cached
    per version while reuse changes with the rest of the account and with who is looking."""
    markers = reuse_markers(name=name, version_id=version_id, visible=visible)
    notes = []
    for (env, service, key), places in sorted(markers.items()):
        if not places:
            continue
        more = f" and {len(places) - 1} more" if len(places) > 1 else ""
        notes.append(
            ReuseNote(
                cell=f"{env}/{service}/{key}",
                marker=f"same value as {places[0]}{more}",
                places=", ".join(places),
            )
        )
    return notes


# --------------------------------------------------------------------------------------------
# Stale credentials


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


def environments_in(*, visible: Visible) -> list[str]:
    """Every environment some indexed unified secret has (standard ones first)."""
    return _memo("environments", visible, lambda: _environments_in(visible))


def _environments_in(visible: Visible) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(documents.STANDARD_ENVIRONMENTS)
    found: set[str] = set()
    for envs in _secrets(visible).filter(unified=True).values_list("environments", flat=True):
        seen.update(dict.fromkeys(envs))
        found.update(envs)
    return [e for e in seen if e in found]


def _limits(visible: Visible, now: datetime) -> dict[str, datetime]:
    """Per environment of the index with a limit: cells changed before this are stale."""
    limits = {}
    for env in environments_in(visible=visible):
        days = days_for(env)
        if days is not None:
            limits[env] = now - timedelta(days=days)
    return limits


def _stale_q(limits: dict[str, datetime]) -> Q:
    """Per environment, cells changed before its limit (each an index range on
    ``(credential, environment, changed_at)``)."""
    stale = Q(pk__in=[])
    for env, before in limits.items():
        stale |= Q(environment=env, changed_at__lt=before)
    return stale


@dataclass(frozen=True)
class StaleCell:
    place: Place
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


def _stale_cells(visible: Visible, now: datetime) -> QuerySet[IndexCell]:
    return _cells(visible).filter(_stale_q(_limits(visible, now)), credential=True)


def staleness(
    *, visible: Visible, now: datetime | None = None, limit: int = 100, environment: str = ""
) -> Staleness:
    """Stale credentials from the index: per environment one count and one ordered read of its
    ``limit`` oldest (an index range each), and the secrets' rotation metadata. Without ``now``
    the report is kept in the cache for up to ``CACHE_SECONDS`` or until the index changes."""
    # Kept for the known environments only: a query naming any other one is answered afresh,
    # so requests cannot grow this process's memory.
    if now is None and (not environment or environment in environments_in(visible=visible)):
        return _memo(
            "staleness",
            visible,
            lambda: _staleness(visible, timezone.now(), limit, environment),
            str(limit),
            environment,
        )
    return _staleness(visible, now or timezone.now(), limit, environment)


def _staleness(visible: Visible, now: datetime, limit: int, environment: str) -> Staleness:
    limits = _limits(visible, now)
    by_env = {}
    for env, before in limits.items():  # one indexed count per environment
        n = _cells(visible).filter(credential=True, environment=env, changed_at__lt=before).count()
        if n:
            by_env[env] = n
    rows: list[tuple[Any, ...]] = []
    for env, before in limits.items():  # the oldest of each environment (index range, in order)
        if environment and env != environment:
            continue
        rows.extend(
            _cells(visible)
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
                Place(name, env, service, key),
                at,
                how,
                by,
                (now - at).days,
                days_for(env) or 0,
            )
        )
    secrets = _secrets(visible).filter(deleted_date__isnull=True)
    rotation = [
        (name, when)
        for name, when in secrets.filter(rotation_enabled=True)
        .order_by("next_rotation", "name")
        .values_list("name", "next_rotation")
    ]
    pending = [(n, v) for n, v in secrets.values_list("name", "pending_versions") if v]
    total = sum(by_env.values()) if not environment else by_env.get(environment, 0)
    return Staleness(cells, total, by_env, rotation, pending, stale_days())


# --------------------------------------------------------------------------------------------
# Adoption of the standard per repository


@dataclass(frozen=True)
class AdoptionItem:
    id: str
    status: Status
    detail: str = ""


#: Item id -> what the portal checks (the standard's migration checklist, as far as it can see).
ADOPTION_ITEMS: dict[str, str] = {
    "unified": "A unified secret <repo>-secrets exists",
    "environments": "It has every required environment (PORTAL_REQUIRED_ENVIRONMENTS)",
    "legacy": "No legacy per-environment secrets left (or all scheduled for deletion)",
    "empty": "No empty production credential",
    "reused": "No production credential reused elsewhere",
    "stale": "No stale production credential",
    "policy": "The generated IAM policy (<name>-*) matches this secret only",
}


@dataclass(frozen=True)
class AdoptionRow:
    repo: str
    secret: str  # "" when the repository has legacy secrets only
    items: tuple[AdoptionItem, ...]

    @property
    def passed(self) -> int:
        return sum(1 for i in self.items if i.status == "ok")

    @property
    def status(self) -> dict[str, AdoptionItem]:
        return {i.id: i for i in self.items}

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "secret": self.secret,
            "passed": self.passed,
            "of": len(self.items),
            "items": {i.id: {"status": i.status, "detail": i.detail} for i in self.items},
        }


#: How a secret's kind reads in the adoption table.
KIND_LABELS = {
    "": "not read yet",
    index.NO_VALUE: "no value yet",
    "not_json": "not JSON",
    "non_standard": "not the standard's structure",
    "empty": "empty value",
    "binary": "binary value",
}


def _listed(names: Iterable[str], most: int = 3) -> str:
    names = sorted(names)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _count_item(item: str, n: int, what: str) -> AdoptionItem:
    return AdoptionItem(item, "ok" if not n else "fail", f"{n} {what}" if n else "")


def adoption(*, visible: Visible, now: datetime | None = None) -> list[AdoptionRow]:
    """One row per repository (a unified secret, or legacy secrets without one), by repo name.

    Reads the index only: the secrets' rows, empty and stale production cells, and
    :func:`reuse_groups`. Without ``now`` the rows are kept in the cache for up to
    ``CACHE_SECONDS`` or until the index changes.
    """
    if now is None:
        return _memo("adoption", visible, lambda: _adoption(visible, timezone.now()))
    return _adoption(visible, now)


def _adoption(visible: Visible, now: datetime) -> list[AdoptionRow]:
    suffix = settings.PORTAL_SECRET_SUFFIX
    secrets = list(
        _secrets(visible).values_list(
            "id", "name", "unified", "kind", "environments", "deleted_date"
        )
    )
    names = {pk: n for pk, n, *_ in secrets}
    all_names = sorted(names.values())
    unified = {n: (kind, envs) for _, n, u, kind, envs, d in secrets if u and d is None}
    repos = {repo_of(n) for n in unified}
    environments = list(
        dict.fromkeys([*settings.PORTAL_REQUIRED_ENVIRONMENTS, *compliance.COMMON_ENVIRONMENTS])
    )
    legacy: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for _, n, u, _, _, deleted in secrets:
        if u:
            continue
        match = compliance.legacy_match(n, repos, environments)
        if match is None:
            continue
        owner = match.repo or n[: -len(match.environment) - 1]
        legacy[owner].append((n, deleted is not None))
    empty: dict[str, int] = defaultdict(int)
    for pk, env in _cells(visible).filter(empty=True).values_list("secret_id", "environment"):
        if is_production(env):
            empty[names[pk]] += 1
    production = {e: t for e, t in _limits(visible, now).items() if is_production(e)}
    stale: dict[str, int] = {
        names[pk]: n
        for pk, n in _cells(visible)
        .filter(_stale_q(production), credential=True)
        .values_list("secret_id")
        .annotate(n=Count("id"))
        .order_by()
    }
    reused: dict[str, set[str]] = defaultdict(set)
    for group in reuse_groups(visible=visible):
        for p in group.places:
            if p.production:
                reused[p.secret].add(p.cell)
    rows: list[AdoptionRow] = []
    required = tuple(settings.PORTAL_REQUIRED_ENVIRONMENTS)
    for repo in sorted(repos | set(legacy)):
        name = repo + suffix
        olds = legacy.get(repo, [])
        live = [n for n, scheduled in olds if not scheduled]
        legacy_item = AdoptionItem(
            "legacy",
            "fail" if live else "ok",
            f"left: {_listed(live)}"
            if live
            else (f"{len(olds)} scheduled for deletion" if olds else ""),
        )
        if name not in unified:
            rows.append(
                AdoptionRow(
                    repo,
                    "",
                    (
                        AdoptionItem("unified", "fail", f"no {name}"),
                        *(AdoptionItem(i, "unknown") for i in ("environments",)),
                        legacy_item,
                        *(
                            AdoptionItem(i, "unknown")
                            for i in ("empty", "reused", "stale", "policy")
                        ),
                    ),
                )
            )
            continue
        kind, envs = unified[name]
        if kind != "conforming":
            env_item = AdoptionItem(
                "environments", "unknown" if not kind else "fail", KIND_LABELS.get(kind, kind)
            )
        else:
            missing = [e for e in required if e not in envs]
            env_item = AdoptionItem(
                "environments",
                "fail" if missing else "ok",
                f"missing {_listed(missing)}" if missing else "",
            )
        overlap = _policy_overlap(name, all_names)
        rows.append(
            AdoptionRow(
                repo,
                name,
                (
                    AdoptionItem("unified", "ok"),
                    env_item,
                    legacy_item,
                    _count_item("empty", empty.get(name, 0), "empty"),
                    AdoptionItem(
                        "reused",
                        "fail" if reused.get(name) else "ok",
                        _listed(reused.get(name, ())),
                    ),
                    _count_item("stale", stale.get(name, 0), "stale"),
                    AdoptionItem(
                        "policy",
                        "fail" if overlap else "ok",
                        f"{name}-* also matches {_listed(overlap)}" if overlap else "",
                    ),
                ),
            )
        )
    return rows


def _policy_overlap(name: str, sorted_names: Sequence[str]) -> list[str]:
    """Other secrets the integration page's ``<name>-*`` resource would also grant (AWS appends
    ``-`` and six random characters to an ARN, so the standard's policy ends in ``-*``); a name
    holding an IAM wildcard (``*``/``?``) cannot be granted alone at all."""
    if "*" in name or "?" in name:
        return [name]
    prefix = name + "-"
    out = []
    i = bisect.bisect_left(sorted_names, prefix)
    while i < len(sorted_names) and sorted_names[i].startswith(prefix):
        out.append(sorted_names[i])
        i += 1
    return out


ADOPTION_SORTS = ("repo", "passed", *ADOPTION_ITEMS)
_RANK = {"fail": 0, "unknown": 1, "ok": 2}


def sort_adoption(rows: list[AdoptionRow], sort: str) -> list[AdoptionRow]:
    """Rows sorted by ``sort``: ``repo``, ``passed`` or an item id; a leading ``-`` reverses."""
    reverse = sort.startswith("-")
    column = sort.lstrip("-")
    if column == "passed":
        return sorted(rows, key=lambda r: (r.passed, r.repo), reverse=reverse)
    if column in ADOPTION_ITEMS:
        return sorted(rows, key=lambda r: (_RANK[r.status[column].status], r.repo), reverse=reverse)
    return sorted(rows, key=lambda r: r.repo, reverse=reverse)


# --------------------------------------------------------------------------------------------
# Compliance findings


def _open(name: str) -> compliance.Fix:
    return compliance.Fix("secret_detail", (name,), label=f"open {name}")


def findings(*, visible: Visible = None, now: datetime | None = None) -> list[compliance.Finding]:
    """Reuse, staleness and empty production credentials as compliance findings, from the index
    (no AWS call). Each names cells, never a value."""
    now = now or timezone.now()
    out: list[compliance.Finding] = []
    for group in reuse_groups(visible=visible):
        for secret in group.secrets:
            mine = [p for p in group.places if p.secret == secret]
            first = next((p for p in mine if p.production), mine[0])
            others = [p.named_from(secret) for p in group.places if p != first]
            rules = _problems(mine)  # this secret's own environments
            if len(group.secrets) > 1:
                rules.append(("warning", "reuse.across-repositories"))
            for severity, rule in rules:
                out.append(
                    compliance.Finding(
                        severity,
                        rule,
                        secret,
                        f"{first.cell} holds the same value as {_listed(others)} (fingerprint "
                        f"{group.short}; the value is not shown). The standard keeps a separate "
                        "credential per environment and per application: issue a new one.",
                        environment=first.environment,
                        service=first.service,
                        key=first.key,
                        fix=_open(secret),
                    )
                )
    stale = (
        _stale_cells(visible, now)
        .values_list("secret__name", "environment")
        .annotate(n=Count("id"))
        .order_by("secret__name", "environment")
    )
    for secret, env, n in stale:
        out.append(
            compliance.Finding(
                "warning",
                "stale.credential",
                secret,
                f"{n} credential{'s' if n != 1 else ''} in {env!r} unchanged for more than "
                f"{days_for(env)} days (PORTAL_STALE_DAYS). Rotate them.",
                environment=env,
                fix=compliance.Fix(
                    "credential_staleness", query=(("environment", env),), label="due for rotation"
                ),
            )
        )
    empties = (
        _cells(visible)
        .filter(empty=True)
        .values_list("secret__name", "environment", "service", "key")
        .order_by("secret__name", "environment", "service", "key")
    )
    for secret, env, service, key in empties:
        if is_production(env):
            out.append(
                compliance.Finding(
                    "error",
                    "empty.production-credential",
                    secret,
                    "This production value is empty: the app reads an empty string (or null) "
                    "at runtime. Set the credential.",
                    environment=env,
                    service=service,
                    key=key,
                    fix=_open(secret),
                )
            )
    return out
