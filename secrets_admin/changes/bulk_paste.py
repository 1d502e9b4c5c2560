"""Bulk paste into one environment (engineers): a ``.env`` file or a JSON object pasted for one
environment (and optionally one service), previewed per cell (added / changed / unchanged /
type changed), then reviewed and saved through the editor's normal review and save (a change
request for a protected environment).

Shapes read (the migration wizard's readers): ``.env`` lines ``STRIPE_SECRET_KEY=...`` become
service ``stripe``, key ``secret_key`` (with a service chosen, ``SECRET_KEY`` or
``STRIPE_SECRET_KEY`` become its key ``secret_key``); JSON ``{"service": {"key": value}}``, or
``{"key": value}`` with a service chosen. JSON values keep their type.

The preview tells whether a pasted value equals the stored one, so it is a comparison of typed
values with stored ones: recorded in the audit log first (the cells, never a value) and counted
against the person's reveal budget (``PORTAL_REVEAL_RATE``), like a reveal (invariant 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import audit, documents, reads
from ..diffs import CellDelta, DeltaStatus
from ..errors import InvalidChange
from ..migration import MAX_ENV_FILE_BYTES, Entry, parse_env_file, read_env_source, read_json_source
from .comparison import stored_values_compare
from .editor import EditIntent, editor_type


@dataclass
class PastePreview:
    """The per-cell preview of a paste into ``environment`` of version ``base_version_id``, and
    the editor intent that writes it (``intent`` holds the pasted values: never log or store).

    ``cells``: per pasted cell, its :class:`~secrets_admin.diffs.CellDelta` (added, changed,
    unchanged or type_changed; types only, no fingerprint: the pasted values are the person's
    own input) and the note of its source line."""

    name: str
    base_version_id: str
    environment: str
    cells: list[tuple[CellDelta, str]]
    problems: list[str]
    intent: EditIntent = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        out = {"added": 0, "changed": 0, "unchanged": 0, "type_changed": 0}
        for delta, _ in self.cells:
            out[delta.status] += 1
        return out


def _typed(value: Any) -> tuple[str, str]:
    """A pasted JSON value as the editor's (text, type)."""
    value_type = editor_type(documents.value_type(value))
    if value_type == "string":
        return value, "string"
    if value_type == "null":
        return "", "null"
    return documents.serialise(value), value_type


def _read(text: str, *, environment: str, service: str) -> tuple[list[Entry], list[str]]:
    if text.lstrip().startswith("{"):
        read = read_json_source("the pasted JSON", text, environment=environment, service=service)
    else:
        read = read_env_source(
            "the pasted .env", parse_env_file(text), environment=environment, service=service
        )
    entries, problems = [], list(read.problems)
    for entry in read.entries:
        problem = documents.name_problem(entry.service) or documents.name_problem(entry.key)
        if problem:
            problems.append(f"{entry.service} · {entry.key}: {problem}; it is skipped.")
        elif entry.value == "":  # the editor reads an empty field as "leave the cell alone"
            problems.append(f"{entry.service} · {entry.key} is empty in the paste; it is skipped.")
        else:
            entries.append(entry)
    return entries, problems


def secret_bulk_paste_preview(
    *,
    name: str,
    base_version_id: str,
    environment: str,
    service: str,
    text: str,
    context: audit.Context,
) -> PastePreview:
    """Preview pasting ``text`` (``.env`` or JSON, up to 256 KiB) into ``environment`` (an
    existing one) of version ``base_version_id``, and the intent that writes what differs.

    Raises :class:`~secrets_admin.errors.NotEditable` (with the reason),
    :class:`~secrets_admin.errors.InvalidChange` (no such environment, a bad service name, text
    too long, nothing to read), :class:`~secrets_admin.ratelimit.ComparisonsLimited` (429),
    :class:`~secrets_admin.audit.AuditUnavailable` (fail closed),
    :class:`~secrets_admin.aws.AwsError`.
    """
    if len(text.encode("utf-8")) > MAX_ENV_FILE_BYTES:
        raise InvalidChange(f"Paste at most {MAX_ENV_FILE_BYTES // 1024} KiB at once.")
    _, base = reads.secret_edit_base(name=name, version_id=base_version_id)
    document = base.document
    if environment not in document:
        raise InvalidChange(f"This version has no environment {environment!r}: choose one it has.")
    if service and documents.name_problem(service):
        raise InvalidChange(f"The service name: {documents.name_problem(service)}.")
    entries, problems = _read(text, environment=environment, service=service)
    if not entries:
        raise InvalidChange(
            "Nothing to paste: " + (" ".join(problems) or "the text holds no key and value.")
        )
    stored = {
        (e.service, e.key): documents.lookup(document, (environment, e.service, e.key))
        for e in entries
    }
    # Recorded (and charged) before any outcome is computed: the statuses are the comparison.
    stored_values_compare(
        name=name,
        base_version_id=base.version_id,
        cells=[(environment, s, k) for (s, k), (present, _) in stored.items() if present],
        context=context,
    )
    cells, intent = [], EditIntent()
    for entry in entries:
        present, before = stored[(entry.service, entry.key)]
        old = documents.value_state(before) if present else documents.ABSENT
        new = documents.value_state(entry.value)
        status: DeltaStatus = "added"
        if present and old.type != new.type:
            status = "type_changed"
        elif present:
            same = documents.serialise(before) == documents.serialise(entry.value)
            status = "unchanged" if same else "changed"
        delta = CellDelta(environment, entry.service, entry.key, status, old, new)
        cells.append((delta, entry.note))
        if status != "unchanged":
            cell = (environment, entry.service, entry.key)
            intent.values[cell], value_type = _typed(entry.value)
            if value_type != "string":
                intent.types[cell] = value_type
    return PastePreview(name, base.version_id, environment, cells, problems, intent)
