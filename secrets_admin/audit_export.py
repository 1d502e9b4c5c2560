"""The auditor's search and exports of the audit log: :class:`EventFilter` (what to show),
:func:`one_row_per_action` (an action with its outcome, not its attempt), and streamed
:func:`export_csv` / :func:`export_jsonl` (also the line each audit device receives).

Events never hold a value, so neither does an export; CSV cells that a spreadsheet would run as
a formula are defused (OWASP "CSV injection"), JSON Lines keep every field exactly as hashed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from . import audit
from .audit import Outcome
from .models import AuditEvent


@dataclass(frozen=True)
class EventFilter:
    """What an auditor asks for. Empty fields do not filter. ``secret`` and ``actor`` (username
    or email) match any part, case-insensitively, unless named in ``exact`` (a timeline's
    fixed secret or person, comma-separated); the other text fields match exactly;
    ``since``/``until`` are whole UTC days, both included."""

    secret: str = ""
    environment: str = ""
    service: str = ""
    key: str = ""
    actor: str = ""
    action: str = ""
    outcome: str = ""
    since: date | None = None
    until: date | None = None
    exact: str = ""

    def events(self) -> QuerySet[AuditEvent]:
        """The matching events, in no particular order (callers order by ``seq``)."""
        qs = AuditEvent.objects.all()
        for name in ("environment", "service", "key", "action", "outcome"):
            if value := getattr(self, name):
                qs = qs.filter(**{name: value})
        exact = set(self.exact.split(","))
        if self.secret:
            how = "secret" if "secret" in exact else "secret__icontains"
            qs = qs.filter(**{how: self.secret})
        if self.actor:
            how = "iexact" if "actor" in exact else "icontains"
            qs = qs.filter(
                Q(**{f"actor_username__{how}": self.actor})
                | Q(**{f"actor_email__{how}": self.actor})
            )
        if self.since:
            qs = qs.filter(created__gte=datetime.combine(self.since, time.min, tzinfo=UTC))
        if self.until:
            end = datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=UTC)
            qs = qs.filter(created__lt=end)
        return qs

    def as_params(self) -> dict[str, str]:
        """The non-empty fields as query parameters (dates ISO)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value:
                out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out


def one_row_per_action(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """``events`` without the "attempted" events whose outcome was recorded (the outcome event
    names its attempt): one row per action, with its outcome. An attempt with no outcome yet
    stays (it is the one to look at)."""
    settled = AuditEvent.objects.filter(attempt__isnull=False).values("attempt")
    return events.exclude(outcome=Outcome.ATTEMPTED, seq__in=settled)


def _export_records(events: QuerySet[AuditEvent], chunk_size: int) -> Iterator[dict[str, Any]]:
    rows = events.order_by("seq").values_list(*audit.EXPORT_FIELDS).iterator(chunk_size=chunk_size)
    for row in rows:
        item = dict(zip(audit.EXPORT_FIELDS, row, strict=True))
        item["created"] = audit.utc_iso(item["created"])
        yield item


class _Line:
    """A file-like object whose ``write`` returns what it was given (for ``csv.writer``)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """One CSV cell. Text that a spreadsheet would run as a formula gets a leading ``'``
    (OWASP "CSV injection"); the JSON Lines export keeps every field exact."""
    if type(value) is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _csv_cell(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return value  # numbers


def export_csv(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """``events`` as CSV lines in ``seq`` order, header first: :data:`audit.EXPORT_FIELDS`,
    ``detail`` as JSON. A generator reading ``chunk_size`` rows at a time (constant memory)."""
    writer = csv.writer(_Line())
    yield writer.writerow(audit.EXPORT_FIELDS)
    for item in _export_records(events, chunk_size):
        yield writer.writerow([_csv_cell(item[name]) for name in audit.EXPORT_FIELDS])


def export_jsonl(events: QuerySet[AuditEvent], *, chunk_size: int = 2000) -> Iterator[str]:
    """``events`` as JSON Lines in ``seq`` order: one object per event with
    :data:`audit.EXPORT_FIELDS`, exactly as hashed (``audit.compute_hash(json.loads(line)) == hash``)."""
    for item in _export_records(events, chunk_size):
        yield json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"
