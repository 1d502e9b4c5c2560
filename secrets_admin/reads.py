"""Read use cases: open a secret as a grid, reveal one cell (audited), fingerprints.

A grid costs one ``DescribeSecret`` and one ``GetSecretValue`` (DESIGN.md "Cost and speed"), and
``DescribeSecret`` alone when the current version's grid is cached (:class:`GridShape`: types
and fingerprints, never values); a reveal one ``GetSecretValue`` of the version on screen.
Values leave this module only in the return value of :func:`cell_reveal`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.core.cache import cache

from . import audit, aws, documents, listing, permissions


def fingerprint(value: Any) -> str:
    """HMAC-SHA256 of a value with ``PORTAL_FINGERPRINT_KEY`` (hex, 64 chars)."""
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), value)


@dataclass
class CellView:
    """What the grid shows of one cell: never the value."""

    present: bool
    type: str = ""
    fingerprint: str = ""


@dataclass
class RowView:
    service: str
    key: str
    cells: list[tuple[str, CellView]]
    first_of_service: bool = False


@dataclass
class SecretPage:
    """Everything the grid page shows. ``read_only_reason`` is empty when the secret is editable."""

    name: str
    description: aws.SecretDescription
    version_id: str = ""
    classified: documents.Classified | None = None
    environments: list[str] = field(default_factory=list)
    protected: dict[str, bool] = field(default_factory=dict)
    rows: list[RowView] = field(default_factory=list)
    problem: str = ""  # why no grid is shown (deleted, no value, binary, non-standard)
    read_only_reason: str = ""

    @property
    def conforming(self) -> bool:
        return self.classified is not None and self.classified.conforming


#: A version's grid (names, types, fingerprints; never values) is kept this long in the cache.
GRID_CACHE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class GridShape:
    """What the grid shows of one version, computed once per version: its classification
    (without the document) and, when it conforms, environments and rows of types and
    fingerprints. Secrets Manager versions are immutable, so a shape never goes stale."""

    classified: documents.Classified
    environments: list[str]
    rows: list[RowView]


def _shape_key(name: str, version_id: str) -> str:
    # The fingerprint key is part of the cache key: rotating it makes every cached shape unused.
    digest = hashlib.sha256(
        b"\0".join([settings.PORTAL_FINGERPRINT_KEY.encode(), name.encode(), version_id.encode()])
    ).hexdigest()
    return f"portal:grid:v1:{digest}"


def _shape(classified: documents.Classified) -> GridShape:
    """Build the grid of a classified version (fingerprints computed here, values dropped)."""
    without_values = replace(classified, document=None)
    if not classified.conforming:
        return GridShape(without_values, [], [])
    grid = documents.grid(classified.document)
    key = settings.PORTAL_FINGERPRINT_KEY.encode()
    rows: list[RowView] = []
    previous_service = None
    for row in grid.rows:
        cells = []
        for env in grid.environments:
            if env in row.values:
                v = row.values[env]
                fp = documents.short(documents.fingerprint(key, v))
                cells.append((env, CellView(True, documents.value_type(v), fp)))
            else:
                cells.append((env, CellView(False)))
        rows.append(
            RowView(row.service, row.key, cells, first_of_service=row.service != previous_service)
        )
        previous_service = row.service
    return GridShape(without_values, grid.environments, rows)


def secret_open(name: str) -> SecretPage:
    """Read a secret for the grid: ``DescribeSecret``, then (when it has a value) one
    ``GetSecretValue`` of ``AWSCURRENT`` unless the grid of the current version is already in
    the cache (then ``DescribeSecret`` alone). ``page.classified`` never holds the document.
    Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound`` ...) with a user-facing
    message."""
    description = aws.describe(name)
    page = SecretPage(name=name, description=description)
    meta = description.meta
    if meta.is_replica(aws.region()):
        page.read_only_reason = (
            f"This is a replica of the secret in {meta.primary_region}; edit it there."
        )
    if meta.scheduled_for_deletion:
        when = meta.deleted_date.date().isoformat() if meta.deleted_date else "soon"
        page.problem = (
            f"This secret is scheduled for deletion on {when}. Its value can't be read or "
            "changed until an admin restores it (RestoreSecret)."
        )
        page.read_only_reason = page.problem
        return page
    if not description.has_value:
        page.problem = aws.NoValueYet.default
        return page
    shape = cache.get(_shape_key(name, meta.current_version)) if meta.current_version else None
    if isinstance(shape, GridShape):
        page.version_id = meta.current_version
    else:
        value = aws.read_current(name)
        classified = listing.classify_value(value)
        listing.remember(name, value.version_id, classified)
        shape = _shape(classified)
        cache.set(_shape_key(name, value.version_id), shape, GRID_CACHE_SECONDS)
        page.version_id = value.version_id
    page.classified = shape.classified
    if not shape.classified.conforming:
        page.problem = (
            "This secret does not follow the unified-secrets standard, so it is shown read-only "
            "and never rewritten."
        )
        page.read_only_reason = page.problem
        return page
    page.environments = shape.environments
    page.protected = {env: permissions.is_protected(env) for env in shape.environments}
    page.rows = shape.rows
    return page


class CellNotFound(Exception):
    """The asked cell is not in the version on screen."""

    message = "That cell is not in the version shown. Reload the page to see the current version."


def display_value(value: Any) -> str:
    """A value as shown on reveal: strings as they are, other JSON types as their exact JSON."""
    if isinstance(value, str) and not isinstance(value, documents.JsonNumber):
        return value
    return documents.serialise(value)


def cell_reveal(
    *,
    name: str,
    version_id: str,
    environment: str,
    service: str,
    key: str,
    context: audit.Context,
) -> str:
    """Return one cell's value from version ``version_id``, after recording a ``reveal`` event.

    The event is committed before the value is read (fail closed: raises
    :class:`~secrets_admin.audit.AuditUnavailable` and returns nothing when it cannot be).
    Raises :class:`CellNotFound` or :class:`~secrets_admin.aws.AwsError`.
    """
    with audit.attempt(
        "reveal",
        context=context,
        secret=name,
        environment=environment,
        service=service,
        key=key,
        base_version=version_id,
    ) as handle:
        value = aws.read_version(name, version_id)
        if value.text is None:
            raise CellNotFound()
        try:
            cell = documents.get_cell(documents.parse(value.text), environment, service, key)
        except (KeyError, ValueError, TypeError):
            raise CellNotFound() from None
        handle.succeeded(fingerprint_after=fingerprint(cell))
    return display_value(cell)
