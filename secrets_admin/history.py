"""Version history of a secret: every version with its labels, author and change summary from the
audit log, and the per-cell difference between any two versions. Reads only; never a value.

The history costs one ``ListSecretVersionIds`` per 100 versions (deprecated included); a diff
costs one ``GetSecretValue`` per version compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator

from . import audit_reconcile, aws
from .changes import protocol
from .models import AuditEvent

#: Audit actions whose outcome creates a version (see ``changes``).
WRITE_ACTIONS = (
    "save",
    "environment_restore",
    "secret_create",
    "change_request_propose",
    "change_request_apply",
)


@dataclass(frozen=True)
class VersionRow:
    """One version as the history shows it."""

    version_id: str
    stages: tuple[str, ...]
    created: datetime | None
    author: str = ""
    action: str = ""
    summary: str = ""
    when_recorded: datetime | None = None
    staged_only: bool = False  # staged by the portal but never made current (a conflict)
    outside_portal: bool = False  # no portal audit event wrote it

    @property
    def current(self) -> bool:
        return aws.CURRENT in self.stages


def _summary(event: AuditEvent) -> str:
    detail: dict[str, Any] = event.detail or {}
    if event.action.startswith("secret_create"):
        return "created with " + ", ".join(detail.get("environments", []))
    counts = detail.get("counts") or {}
    parts = [f"{counts[k]} {k}" for k in ("added", "changed", "removed") if counts.get(k)]
    structure = detail.get("structure") or []
    if structure:
        parts.append(f"{len(structure)} environment/service change{'s' * (len(structure) > 1)}")
    where = ", ".join(detail.get("environments") or [])
    text = (", ".join(parts) or "no cell changes") + (f" in {where}" if where else "")
    if detail.get("kind") == "restore_environment":
        text = f"restored {detail.get('environment', '')} to {detail.get('from', '')}: {text}"
    if detail.get("kind") == "change_request" and detail.get("author"):
        approvers = ", ".join(detail.get("approvers") or []) or "nobody (break-glass)"
        text = (
            f"change request #{detail.get('change_request')} by {detail['author']}, "
            f"approved by {approvers}: {text}"
        )
    elif detail.get("kind") == "change_request":
        text = f"proposed as {detail.get('label', 'a change request')} (not current): {text}"
    if detail.get("rebased"):
        text += f" (rebased {detail['rebased']}x)"
    return text


def _outside_portal(name: str, version_ids: list[str], known: set[str]) -> set[str]:
    """Versions no portal event accounts for.

    ``audit_reconcile.versions_outside_portal`` decides from the events' ``new_version``; versions staged by
    rebased or conflicted tries (``known``, from the events' ``detail.staged_versions``) are the
    portal's too.
    """
    return audit_reconcile.versions_outside_portal(name, version_ids) - known


#: Versions per history page. AWS keeps about 100 versions of a secret (Secrets Manager quotas),
#: so a busy secret has a few pages.
HISTORY_PAGE_SIZE = 25


def _newest_first(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first by AWS's creation date; ties (moto dates every version "now") fall back on
    the listing order, reversed (moto lists in creation order)."""
    order = {id(v): i for i, v in enumerate(versions)}

    def key(v: dict[str, Any]) -> tuple[float, int]:
        created = v.get("CreatedDate")
        return (created.timestamp() if created else 0.0, order[id(v)])

    return sorted(versions, key=key, reverse=True)


def _write_events(name: str) -> tuple[dict[str, AuditEvent], set[str]]:
    """One query: the portal's write events of ``name`` as (version -> the event that made it
    current or staged it for a change request, versions staged by tries that did not land)."""
    events = AuditEvent.objects.filter(
        secret=name,
        action__in=WRITE_ACTIONS,
        outcome__in=("succeeded", "conflicted", "failed"),
    ).order_by("seq")
    landed: dict[str, AuditEvent] = {}
    staged: set[str] = set()
    for event in events:
        if event.outcome == "succeeded" and event.new_version:
            landed[event.new_version] = event
        staged.update((event.detail or {}).get("staged_versions") or [])
    return landed, staged


def _row(
    version: dict[str, Any], landed: dict[str, AuditEvent], staged: set[str], outside: set[str]
) -> VersionRow:
    vid = str(version["VersionId"])
    found = landed.get(vid)
    return VersionRow(
        version_id=vid,
        stages=tuple(version.get("VersionStages") or ()),
        created=version.get("CreatedDate"),
        author=_author(found) if found else "",
        action=found.action.split(".")[0] if found else "",
        summary=_summary(found) if found else "",
        when_recorded=found.created if found else None,
        staged_only=found is None and vid in staged,
        outside_portal=vid in outside,
    )


def secret_history(name: str) -> list[VersionRow]:
    """Every version of ``name``, newest first, with author and summary where the portal wrote
    it. Raises :class:`~secrets_admin.aws.AwsError`."""
    versions = _newest_first(aws.list_versions(name))
    landed, staged = _write_events(name)
    ids = [str(v["VersionId"]) for v in versions]
    outside = _outside_portal(name, ids, set(landed) | staged)
    return [_row(v, landed, staged, outside) for v in versions]


@dataclass(frozen=True)
class HistoryPage:
    """One page of a secret's history: ``rows`` as ``(row, before)`` pairs, and ``page``, the
    Django :class:`~django.core.paginator.Page` of AWS's version entries, for navigation."""

    rows: list[tuple[VersionRow, str]]
    page: Page[dict[str, Any]]


def secret_history_page(
    name: str, number: int | str | None, *, per_page: int = HISTORY_PAGE_SIZE
) -> HistoryPage:
    """One page of :func:`secret_history`, newest first; a number out of range gives the last
    page, one that is not a number the first (``Paginator.get_page``).

    Each row is ``(row, before)``: ``before`` is the next older version that was current at
    some point (not one only staged), for "diff with the one before" (``""`` for the oldest); it
    may be on the next page. Costs one ``ListSecretVersionIds`` per 100 versions and two audit
    queries whatever the page size (the write events of the secret, and which versions of the
    page no event names). Raises :class:`~secrets_admin.aws.AwsError`.
    """
    versions = _newest_first(aws.list_versions(name))
    landed, staged = _write_events(name)
    ids = [str(v["VersionId"]) for v in versions]
    only_staged = {vid for vid in ids if vid in staged and vid not in landed}
    page = Paginator(versions, per_page).get_page(number)
    first = page.start_index() - 1 if versions else 0
    shown = [str(v["VersionId"]) for v in page.object_list]
    outside = _outside_portal(name, shown, set(landed) | staged)
    items: list[tuple[VersionRow, str]] = []
    for offset, version in enumerate(page.object_list):
        older = ids[first + offset + 1 :]
        before = next((vid for vid in older if vid not in only_staged), "")
        items.append((_row(version, landed, staged, outside), before))
    return HistoryPage(rows=items, page=page)


#: How many of a secret's newest write events :func:`cell_last_changes` looks through.
CELL_AUTHOR_EVENTS = 200


@dataclass(frozen=True)
class CellChange:
    """Who last changed one cell through the portal, and when (from the audit log)."""

    who: str
    when: datetime


def cell_last_changes(name: str, cells: list[tuple[str, str, str]]) -> list[CellChange | None]:
    """For each of ``cells``, who last changed it through the portal and when: the newest
    succeeded write event of ``name`` whose ``detail.cells`` names it (a whole service or
    environment removed names each of its cells). ``None``: no portal event among the newest
    :data:`CELL_AUTHOR_EVENTS` names the cell (written outside the portal, or long ago).
    One query."""
    wanted = set(cells)
    found: dict[tuple[str, str, str], CellChange] = {}
    events = AuditEvent.objects.filter(
        secret=name, action__in=WRITE_ACTIONS, outcome="succeeded"
    ).order_by("-seq")[:CELL_AUTHOR_EVENTS]
    for event in events:
        for cell in (event.detail or {}).get("cells") or []:
            if not isinstance(cell, dict):
                continue
            ref = (cell.get("environment", ""), cell.get("service", ""), cell.get("key", ""))
            if ref in wanted and ref not in found:
                found[ref] = CellChange(_author(event), event.created)
        if len(found) == len(wanted):
            break
    return [found.get(cell) for cell in cells]


def _author(event: AuditEvent) -> str:
    name = event.actor_name or event.actor_username
    return f"{name} <{event.actor_email}>" if event.actor_email else name


@dataclass(frozen=True)
class VersionDiff:
    """The per-cell difference from version ``before`` to version ``after`` (fingerprints only)."""

    before: str
    after: str
    preview: protocol.Preview


def secret_version_diff(name: str, before: str, after: str) -> VersionDiff:
    """Compare two versions cell by cell (added / removed / changed / type changed).

    Two ``GetSecretValue`` calls. Raises :class:`~secrets_admin.changes.NotEditable` when either
    version breaks the standard (no cells to compare), :class:`~secrets_admin.aws.AwsError`.
    """
    a = protocol.read_version(name, before)
    b = protocol.read_version(name, after)
    return VersionDiff(before, after, protocol.compare(name, a, b.document))
