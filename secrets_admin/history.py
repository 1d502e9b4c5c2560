"""Version history of a secret: every version with its labels, author and change summary from the
audit log, and the per-cell difference between any two versions. Reads only; never a value.

The history costs one ``ListSecretVersionIds`` per 100 versions (deprecated included); a diff
costs one ``GetSecretValue`` per version compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import audit, aws
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

    ``audit.versions_outside_portal`` decides from the events' ``new_version``; versions staged by
    rebased or conflicted tries (``known``, from the events' ``detail.staged_versions``) are the
    portal's too.
    """
    return audit.versions_outside_portal(name, version_ids) - known


def secret_history(name: str) -> list[VersionRow]:
    """Every version of ``name``, newest first, with author and summary where the portal wrote
    it. Raises :class:`~secrets_admin.aws.AwsError`."""
    versions = aws.list_versions(name)
    ids = [str(v["VersionId"]) for v in versions]
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
    outside = _outside_portal(name, ids, set(landed) | staged)
    rows = []
    for v in versions:
        vid = str(v["VersionId"])
        found = landed.get(vid)
        rows.append(
            VersionRow(
                version_id=vid,
                stages=tuple(v.get("VersionStages") or ()),
                created=v.get("CreatedDate"),
                author=_author(found) if found else "",
                action=found.action.split(".")[0] if found else "",
                summary=_summary(found) if found else "",
                when_recorded=found.created if found else None,
                staged_only=found is None and vid in staged,
                outside_portal=vid in outside,
            )
        )
    order = {vid: i for i, vid in enumerate(ids)}
    # Newest first by AWS's creation date; ties (moto dates every version "now") fall back on
    # the listing order, reversed (moto lists in creation order).
    rows.sort(key=lambda r: (_sort_time(r), order[r.version_id]), reverse=True)
    return rows


def _sort_time(row: VersionRow) -> float:
    return row.created.timestamp() if row.created else 0.0


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
