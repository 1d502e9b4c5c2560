"""The grid of one secret, served from the shared cache for a version seen before.

Secrets Manager versions are immutable, so everything the grid shows of a version (types,
fingerprints, the environment x (service, key) layout, drift counts, the rendered masked rows)
is derived once and kept in Django's cache (Redis, shared by every instance, when ``CACHE_URL``
is set), keyed by the secret, the version and what the viewer may see. A grid view then costs one
``DescribeSecret`` (which names the current version) and no ``GetSecretValue``; the first view of
a version adds the one ``GetSecretValue`` (README "Cost model").

Nothing cached here holds a value: only names, JSON type names and short HMAC fingerprints
(invariant 1; a fingerprint is keyed with ``PORTAL_FINGERPRINT_KEY``, whose digest is part of the
cache key, so a new key never shows old fingerprints).

Large grids show their first services in full and the others collapsed: each collapsed service
is fetched on demand (:func:`service_rows`, htmx) for the version on screen, so the page stays
small in the browser (about :data:`EAGER_CELLS` cells of HTML up front).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString

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
    empty: bool = False  # an empty string: shown as "empty, needs a value", not masked


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
    """Everything the grid page shows of one version, value-free (cached per version).

    The page's head needs only the small part (:meth:`head`: no rows); the rows are rendered
    once into cached HTML, and read again only to expand a collapsed service."""

    version_id: str
    facts: Facts
    environments: list[str] = field(default_factory=list)
    protected: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    has_rows: bool = False
    services: list[ServiceGroup] = field(default_factory=list)

    @property
    def rows(self) -> list[RowView]:
        return [row for group in self.services for row in group.rows]

    def service(self, name: str) -> ServiceGroup | None:
        return next((g for g in self.services if g.service == name), None)

    def head(self) -> GridModel:
        """This model without its rows: what a view of a version seen before unpickles."""
        return replace(self, services=[])


@dataclass
class GridPage:
    """The grid page of one secret: its description and, when it has a readable value, the
    :class:`GridModel` of the current version (its head) and the rendered rows. The attributes
    the template reads (``name``, ``description``, ``version_id``, ``classified``,
    ``conforming``, ``environments``, ``protected``, ``problem``, ``read_only_reason``) match
    :class:`~secrets_admin.reads.SecretPage`'s."""

    name: str
    description: aws.SecretDescription
    model: GridModel | None = None
    rows_html: SafeString = field(default_factory=lambda: SafeString(""))
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
    def has_rows(self) -> bool:
        return self.model is not None and self.model.has_rows

    @property
    def columns(self) -> list[tuple[str, str, int]]:
        """One ``(environment, badge, lacks)`` per column: badge ``production`` for ``main``,
        ``protected`` for another protected environment, else empty; ``lacks`` is how many
        keys other environments have and this one lacks."""
        protected, missing = self.protected, self.missing_cells
        return [
            (
                env,
                ("production" if env == "main" else "protected") if protected.get(env) else "",
                missing.get(env, 0),
            )
            for env in self.environments
        ]


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
    return ":".join(("portal:grid:v2", kind, digest, version_id, _tag(), *parts))


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
    model.has_rows = bool(grid.rows)
    fingerprint = _Fingerprinter(settings.PORTAL_FINGERPRINT_KEY.encode())
    env_json = [(env, json.dumps(env)) for env in grid.environments]
    groups: dict[str, ServiceGroup] = {}
    for row in grid.rows:
        # The Reveal button's cell, exactly json.dumps([env, service, key]), built per row.
        tail = f"{json.dumps(row.service)}, {json.dumps(row.key)}]"
        cells = []
        for env, env_text in env_json:
            if env in row.values:
                v = row.values[env]
                cell = CellView(
                    True,
                    documents.value_type(v),
                    fingerprint.short(v),
                    f"[{env_text}, {tail}",
                    empty=v == "",
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


class _Fingerprinter:
    """:func:`documents.fingerprint` shortened for display, for many values under one key: the
    HMAC's keyed state is made once and copied per value (half the SHA-256 work of
    ``hmac.digest`` per value, same digests)."""

    def __init__(self, key: bytes) -> None:
        self.keyed = hmac.new(key, digestmod=hashlib.sha256)

    def short(self, value: Any) -> str:
        if isinstance(value, str) and not isinstance(value, documents.JsonNumber):
            data = b"s:" + value.encode("utf-8")
        else:
            data = b"j:" + documents.serialise(value).encode("utf-8")
        mac = self.keyed.copy()
        mac.update(data)
        return documents.short(mac.hexdigest())


def model_for(name: str, version_id: str, *, current: bool = False) -> GridModel:
    """The full view model of version ``version_id`` of ``name``: from the cache, or read with
    one ``GetSecretValue`` (then cached with its head; when ``current`` says it is the version
    ``DescribeSecret`` named current, the secret's summary is recorded for the list).

    Raises :class:`~secrets_admin.aws.AwsError`."""
    key = _key("model", name, version_id)
    cached = cache.get(key)
    if isinstance(cached, GridModel):
        return cached
    value = aws.read_version(name, version_id)
    classified = listing.classify_value(value)
    model = build_model(value.version_id, classified)
    if current:
        listing.remember(name, value.version_id, classified)
    cache.set_many({key: model, _key("head", name, version_id): model.head()}, CACHE_SECONDS)
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


#: Who may reveal where: ``True`` every environment, ``False`` none, or a test per environment.
RevealRule = bool | Callable[[str], bool]


def reveal_environments(can_reveal: RevealRule, environments: Sequence[str]) -> frozenset[str]:
    """The ``environments`` whose cells get a Reveal button under ``can_reveal``."""
    if can_reveal is True:
        return frozenset(environments)
    if can_reveal is False:
        return frozenset()
    return frozenset(e for e in environments if can_reveal(e))


def _rows_variant(allowed: frozenset[str], environments: Sequence[str]) -> str:
    """The cache key part of rendered rows: which environments carry Reveal buttons."""
    if not allowed:
        return "masked"
    if allowed == frozenset(environments):
        return "reveal"
    joined = "\n".join(sorted(allowed)).encode()
    return "reveal-" + hashlib.sha256(joined).hexdigest()[:16]


class _RecentRows:
    """This process's last rendered rows, by cache key, up to :data:`RECENT_ROWS_BYTES` of
    HTML (names, types and fingerprints; never a value). A version's rows never change, so a
    copy is never stale; it is used only after the shared cache still holds the version's head,
    so dropping the shared cache drops these too. Saves the rows' read from the shared cache
    (a 3,200-cell grid's rows are ~200 KiB)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[str, SafeString] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> SafeString | None:
        with self.lock:
            html = self.items.get(key)
            if html is not None:
                self.items.move_to_end(key)
            return html

    def put(self, key: str, html: SafeString) -> None:
        if len(html) > self.limit:
            return
        with self.lock:
            old = self.items.pop(key, None)
            self.size += len(html) - (len(old) if old is not None else 0)
            self.items[key] = html
            while self.size > self.limit:
                _, dropped = self.items.popitem(last=False)
                self.size -= len(dropped)


#: Characters of rendered rows a process keeps (:class:`_RecentRows`).
RECENT_ROWS_BYTES = 16 * 1024 * 1024
_recent_rows = _RecentRows(RECENT_ROWS_BYTES)


def open_grid(name: str, *, can_reveal: RevealRule, reveal_url: str) -> GridPage:
    """The grid page of ``name``'s current version: one ``DescribeSecret``, plus one
    ``GetSecretValue`` only for a version not seen before. A version seen before costs one
    cache read of its head and one of its rendered rows (per the environments where the viewer
    may reveal, ``can_reveal``; ``reveal_url`` must depend on the secret only, as it is part of
    the cached rows).

    Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound`` ...) with a user-facing
    message."""
    description = aws.describe(name)
    page = GridPage(name=name, description=description)
    page.problem, page.read_only_reason = description_problems(description)
    version_id = description.meta.current_version
    if page.problem or not version_id:
        page.problem = page.problem or aws.NoValueYet.default
        return page
    head = cache.get(_key("head", name, version_id))
    model: GridModel | None = None
    if not isinstance(head, GridModel):
        model = model_for(name, version_id, current=True)
        head = model.head()
    allowed = reveal_environments(can_reveal, head.environments)
    rows_key = _key("rows", name, version_id, _rows_variant(allowed, head.environments))
    html = _recent_rows.get(rows_key) if model is None else None  # (head found: see below)
    if html is None:
        html = cache.get(rows_key)
        if not isinstance(html, SafeString):
            model = model or model_for(name, version_id, current=True)
            html = render_rows(name, model, model.services, allowed, reveal_url)
            cache.set(rows_key, html, CACHE_SECONDS)
        _recent_rows.put(rows_key, html)
    page.model = head
    page.rows_html = html
    if not head.facts.conforming:
        page.problem = page.read_only_reason = NON_STANDARD
    return page


_MASK = (
    '<span class="mask"><span aria-hidden="true">\u2022\u2022\u2022\u2022\u2022\u2022'
    '\u2022\u2022</span><span class="sr-only">value hidden</span></span>'
)


def render_rows(
    name: str,
    model: GridModel,
    groups: list[ServiceGroup],
    can_reveal: RevealRule | frozenset[str],
    reveal_url: str,
) -> SafeString:
    """``groups`` of ``model`` as HTML ``<tbody>`` elements, one per service: the shown ones
    with a row per key and a cell per environment (masked value, type, short fingerprint and,
    in the environments ``can_reveal`` allows, a Reveal button naming its cell), the collapsed ones as one row whose
    link fetches that service of this version (htmx swaps the ``<tbody>``; without JavaScript
    the link opens the page with the service shown).

    Built in Python rather than through the template engine: a 3,200-cell grid is 3,200 times
    the same few elements, which the engine renders ten times slower. Every name is escaped;
    types and fingerprints are fixed words and hex."""
    out: list[str] = []
    url = escape(reveal_url)
    columns = len(model.environments) + 1
    version = quote(model.version_id, safe="")
    envs = [escape(env) for env in model.environments]
    allowed = (
        can_reveal
        if isinstance(can_reveal, frozenset)
        else reveal_environments(can_reveal, model.environments)
    )
    for group in groups:
        service = escape(group.service)
        if not group.shown:
            keys = len(group.rows)
            href = f"?service={quote(group.service, safe='')}&amp;version={version}"
            out.append(
                f'<tbody class="service-collapsed"><tr class="service-start">'
                f'<th scope="row" class="service">{service}</th><td colspan="{columns}">'
                f'<a href="{href}" hx-get="{href}" hx-target="closest tbody" '
                f'hx-swap="outerHTML" hx-include="unset">Show the {keys} key'
                f"{'s' if keys != 1 else ''} of {service}</a></td></tr></tbody>\n"
            )
            continue
        out.append('<tbody class="service-rows">\n')
        for row in group.rows:
            key = escape(row.key)
            if row.first_of_service:
                out.append(
                    f'<tr class="service-start"><th scope="row" class="service">{service}</th>'
                )
            else:
                out.append(
                    f'<tr><th scope="row" class="service"><span class="sr-only">{service}</span></th>'
                )
            out.append(f'<th scope="row" class="key">{key}</th>\n')
            for env, (raw_env, cell) in zip(envs, row.cells, strict=True):
                note = f' <span class="cell-note">{escape(cell.note)}</span>' if cell.note else ""
                if not cell.present:
                    out.append(
                        f'<td class="cell missing"><span class="badge muted">missing</span>{note}</td>\n'
                    )
                    continue
                if cell.empty:  # nothing to hide or reveal: say it needs a value
                    out.append(
                        '<td class="cell empty"><span class="badge warn">empty</span> '
                        f'<span class="small muted">needs a value</span>{note}</td>\n'
                    )
                    continue
                button = (
                    f' <button type="submit" form="reveal-form" class="small reveal" name="cell" '
                    f'value="{escape(cell.reveal)}" hx-post="{url}" '
                    f'aria-label="Reveal {env} {service} {key}">Reveal</button>'
                    if raw_env in allowed
                    else ""
                )
                out.append(
                    f'<td class="cell">{_MASK} <span class="type">{cell.type}</span> '
                    f'<code class="fp" title="fingerprint">{cell.fingerprint}</code>{button}{note}</td>\n'
                )
            out.append("</tr>\n")
        out.append("</tbody>\n")
    return SafeString("".join(out))  # nosec B703 - every name is escaped above


def expanded_rows_html(
    name: str, version_id: str, service: str, *, can_reveal: RevealRule, reveal_url: str
) -> SafeString | None:
    """All of version ``version_id``'s rows with ``service`` shown (the page without JavaScript
    after its expand link), or ``None`` when that version has no such service. Not cached.
    Raises :class:`~secrets_admin.aws.AwsError`."""
    model = model_for(name, version_id)
    if model.service(service) is None:
        return None
    groups = [replace(g, shown=True) if g.service == service else g for g in model.services]
    return render_rows(name, model, groups, can_reveal, reveal_url)


def service_rows(
    name: str, version_id: str, service: str, *, can_reveal: RevealRule, reveal_url: str
) -> SafeString | None:
    """One service's ``<tbody>`` of version ``version_id`` (a collapsed service expanded), or
    ``None`` when that version has no such service. Costs one ``GetSecretValue`` only when the
    version is not cached. Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound``
    also for a version id that does not exist)."""
    model = model_for(name, version_id)
    group = model.service(service)
    if group is None:
        return None
    return render_rows(name, model, [replace(group, shown=True)], can_reveal, reveal_url)
