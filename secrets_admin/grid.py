"""The grid of one secret, served from the shared cache for a version seen before.

Secrets Manager versions are immutable, so everything the grid shows of a version (types,
fingerprints, the environment x (service, key) layout, drift counts, the rendered masked rows)
is derived once and kept in Django's cache (Redis, shared by every instance, when ``CACHE_URL``
is set), keyed by the secret, the version and what the viewer may see. A grid view then costs one
``DescribeSecret`` (which names the current version) and no ``GetSecretValue``; the first view of
a version adds the one ``GetSecretValue`` (DESIGN.md "Cost and speed").

Nothing cached here holds a value: only names, JSON type names and short HMAC fingerprints
(invariant 1; a fingerprint is keyed with ``PORTAL_FINGERPRINT_KEY``, whose digest is part of the
cache key, so a new key never shows old fingerprints).

Large grids show their first services in full and the others collapsed: each collapsed service
is fetched on demand (:func:`service_rows`, htmx) for the version on screen, so the page stays
small in the browser (about :data:`EAGER_CELLS` cells of HTML up front).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from . import aws, documents, listing, permissions

#: How long a version's view model and rendered rows stay cached (seconds). Versions never
#: change, so this only bounds the cache's size; a version not viewed for a day is rebuilt.
CACHE_SECONDS = 24 * 3600
#: Cells rendered in the first response of a large grid; services beyond are fetched on demand.
#: About one screen of a 10-environment grid: the 3,200-cell grid's first page stays near 200 KB.
EAGER_CELLS = 400


@dataclass
class CellView:
    """What the grid shows of one cell: never the value.

    ``note`` is an optional short remark shown under the cell (e.g. a sign that another cell
    holds the same value); empty by default.
    """

    present: bool
    type: str = ""
    fingerprint: str = ""
    reveal: str = (
        ""  # the cell as JSON ``[environment, service, key]``, posted by its Reveal button
    )
    note: str = ""


@dataclass
class RowView:
    """One ``(service, key)`` row: a :class:`CellView` per environment, in column order."""

    service: str
    key: str
    cells: list[tuple[str, CellView]]
    first_of_service: bool = False


@dataclass(frozen=True)
class Facts:
    """The value-free part of a classification (:class:`~secrets_admin.documents.Classified`
    without its document): what the page says about a secret's shape."""

    kind: str
    reasons: tuple[str, ...] = ()
    size_bytes: int = 0

    @property
    def conforming(self) -> bool:
        return self.kind == "conforming"


@dataclass
class ServiceGroup:
    """The rows of one service; ``shown`` is False when the page starts with it collapsed."""

    service: str
    rows: list[RowView]
    shown: bool = True

    @property
    def cells(self) -> int:
        return sum(1 for row in self.rows for _, cell in row.cells if cell.present)


@dataclass
class GridModel:
    """Everything the grid page shows of one version, value-free (cached per version)."""

    version_id: str
    facts: Facts
    environments: list[str] = field(default_factory=list)
    protected: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    services: list[ServiceGroup] = field(default_factory=list)

    @property
    def rows(self) -> list[RowView]:
        return [row for group in self.services for row in group.rows]

    def service(self, name: str) -> ServiceGroup | None:
        return next((g for g in self.services if g.service == name), None)


@dataclass
class GridPage:
    """The grid page of one secret: its description and, when it has a readable value, the
    :class:`GridModel` of the current version. The attributes the template reads (``name``,
    ``description``, ``version_id``, ``classified``, ``conforming``, ``environments``,
    ``protected``, ``rows``, ``problem``, ``read_only_reason``) match
    :class:`~secrets_admin.reads.SecretPage`'s."""

    name: str
    description: aws.SecretDescription
    model: GridModel | None = None
    problem: str = ""
    read_only_reason: str = ""

    @property
    def version_id(self) -> str:
        return self.model.version_id if self.model else ""

    @property
    def classified(self) -> Facts | None:
        return self.model.facts if self.model else None

    @property
    def conforming(self) -> bool:
        return self.model is not None and self.model.facts.conforming

    @property
    def environments(self) -> list[str]:
        return self.model.environments if self.model else []

    @property
    def protected(self) -> dict[str, bool]:
        return self.model.protected if self.model else {}

    @property
    def missing_cells(self) -> dict[str, int]:
        return self.model.missing if self.model else {}

    @property
    def services(self) -> list[ServiceGroup]:
        return self.model.services if self.model else []

    @property
    def rows(self) -> list[RowView]:
        return self.model.rows if self.model else []


NON_STANDARD = (
    "This secret does not follow the unified-secrets standard, so it is shown read-only "
    "and never rewritten."
)


def _tag() -> str:
    """What, besides the version, changes the view model: the fingerprint key and the
    protected environments (a short digest; neither is ever stored)."""
    material = json.dumps(
        [
            settings.PORTAL_FINGERPRINT_KEY,
            sorted(getattr(settings, "PORTAL_PROTECTED_ENVIRONMENTS", [])),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _key(kind: str, name: str, version_id: str, *parts: str) -> str:
    """A cache key of at most ~150 characters (memcached's limit is 250): the secret name is
    hashed since it may be up to 512 characters (an AWS limit)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return ":".join(("portal:grid:v1", kind, digest, version_id, _tag(), *parts))


def build_model(version_id: str, classified: documents.Classified) -> GridModel:
    """The view model of a classified version: one HMAC fingerprint and type per present cell.

    The values are read here and dropped: the model holds none of them."""
    facts = Facts(classified.kind, tuple(classified.reasons), classified.size_bytes)
    model = GridModel(version_id=version_id, facts=facts)
    if not classified.conforming:
        return model
    grid = documents.grid(classified.document)
    model.environments = grid.environments
    model.protected = {env: permissions.is_protected(env) for env in grid.environments}
    model.missing = grid.missing_counts()
    key = settings.PORTAL_FINGERPRINT_KEY.encode()
    groups: dict[str, ServiceGroup] = {}
    for row in grid.rows:
        cells = []
        for env in grid.environments:
            if env in row.values:
                v = row.values[env]
                fp = documents.short(documents.fingerprint(key, v))
                cell = CellView(
                    True, documents.value_type(v), fp, json.dumps([env, row.service, row.key])
                )
                cells.append((env, cell))
            else:
                cells.append((env, CellView(False)))
        group = groups.get(row.service)
        if group is None:
            group = groups[row.service] = ServiceGroup(row.service, [])
        group.rows.append(RowView(row.service, row.key, cells, first_of_service=not group.rows))
    model.services = list(groups.values())
    budget = EAGER_CELLS
    for n, group in enumerate(model.services):
        group.shown = n == 0 or budget >= group.cells
        budget = budget - group.cells if group.shown else 0
    return model


def model_for(name: str, version_id: str) -> GridModel:
    """The view model of version ``version_id`` of ``name``: from the cache, or read with one
    ``GetSecretValue`` (and then cached, and the secret's summary recorded for the list).

    Raises :class:`~secrets_admin.aws.AwsError`."""
    key = _key("model", name, version_id)
    cached = cache.get(key)
    if isinstance(cached, GridModel):
        return cached
    value = aws.read_version(name, version_id)
    classified = listing.classify_value(value)
    model = build_model(value.version_id, classified)
    listing.remember(name, value.version_id, classified)
    cache.set(key, model, CACHE_SECONDS)
    return model


def description_problems(description: aws.SecretDescription) -> tuple[str, str]:
    """``(problem, read_only_reason)`` known from ``DescribeSecret`` alone: a replica is
    read-only (edited in its primary region); a secret scheduled for deletion or without a
    value has no grid. Empty strings when neither applies."""
    meta = description.meta
    read_only = ""
    if meta.is_replica(aws.region()):
        read_only = f"This is a replica of the secret in {meta.primary_region}; edit it there."
    if meta.scheduled_for_deletion:
        when = meta.deleted_date.date().isoformat() if meta.deleted_date else "soon"
        problem = (
            f"This secret is scheduled for deletion on {when}. Its value can't be read or "
            "changed until an admin restores it (RestoreSecret)."
        )
        return problem, problem
    if not description.has_value:
        return aws.NoValueYet.default, read_only
    return "", read_only


def open_grid(name: str) -> GridPage:
    """The grid page of ``name``'s current version: one ``DescribeSecret``, plus one
    ``GetSecretValue`` only for a version not seen before.

    Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound`` ...) with a user-facing
    message."""
    description = aws.describe(name)
    page = GridPage(name=name, description=description)
    page.problem, page.read_only_reason = description_problems(description)
    meta = description.meta
    if page.problem or not meta.current_version:
        page.problem = page.problem or aws.NoValueYet.default
        return page
    page.model = model_for(name, meta.current_version)
    if not page.model.facts.conforming:
        page.problem = NON_STANDARD
        page.read_only_reason = NON_STANDARD
    return page


def _render(
    name: str, model: GridModel, groups: list[ServiceGroup], can_reveal: bool, reveal_url: str
) -> str:
    context = {
        "name": name,
        "version_id": model.version_id,
        "environments": model.environments,
        "groups": groups,
        "can_reveal": can_reveal,
        "reveal_url": reveal_url,
    }
    return render_to_string("secrets_admin/_grid_rows.html", context)


def rows_html(page: GridPage, *, can_reveal: bool, reveal_url: str) -> SafeString:
    """The grid's ``<tbody>`` elements as first shown (collapsed services as their expand
    control), rendered once per version and per whether the viewer may reveal, then cached.
    ``reveal_url`` must depend on the secret only (it is part of the cached HTML)."""
    if page.model is None:
        return SafeString("")
    key = _key("rows", page.name, page.model.version_id, "reveal" if can_reveal else "masked")
    html = cache.get(key)
    if not isinstance(html, str):
        html = _render(page.name, page.model, page.model.services, can_reveal, reveal_url)
        cache.set(key, html, CACHE_SECONDS)
    # Rendered by the template engine (autoescaped) from value-free names and fingerprints.
    return mark_safe(html)  # noqa: S308 # nosec B308 B703


def expanded_rows_html(
    page: GridPage, service: str, *, can_reveal: bool, reveal_url: str
) -> SafeString:
    """:func:`rows_html` with ``service`` shown (the page without JavaScript after its expand
    link); not cached."""
    if page.model is None:
        return SafeString("")
    groups = [replace(g, shown=True) if g.service == service else g for g in page.model.services]
    html = _render(page.name, page.model, groups, can_reveal, reveal_url)
    return mark_safe(html)  # noqa: S308 # nosec B308 B703 - autoescaped template output


def service_rows(
    name: str, version_id: str, service: str, *, can_reveal: bool, reveal_url: str
) -> str | None:
    """One service's ``<tbody>`` of version ``version_id`` (a collapsed service expanded), or
    ``None`` when that version has no such service. Costs one ``GetSecretValue`` only when the
    version is not cached. Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound``
    also for a version id that does not exist)."""
    model = model_for(name, version_id)
    group = model.service(service)
    if group is None:
        return None
    return _render(name, model, [replace(group, shown=True)], can_reveal, reveal_url)
