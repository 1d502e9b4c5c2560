"""The migration wizard's plan: legacy secrets and ``.env`` files mapped into one unified secret
(the standard's migration checklist). Pure: no django, no boto3.

Each source (a legacy secret's text, or a ``.env`` file) is mapped to an environment and a
service and read into :class:`Entry` objects (one per value); :func:`plan` places them on the
unified document and says, per cell, what will happen (``new``, ``same``, ``conflict`` kept,
``overwrite``, ``skipped`` with the reason). The plan holds values (in ``changeset``) but its
display fields are names, types and fingerprints only.

Shapes read from a legacy secret's text (a JSON object, parsed exactly by ``documents.parse``):

* with a service given: ``{"key": value, ...}``, every value kept as it is (numbers, booleans,
  nested objects survive untouched);
* without one: ``{"service": {"key": value}, ...}`` (the ``<repo>-<env>`` kind).

A ``.env`` file is parsed by python-dotenv (comments, quotes, ``export``, multi-line values;
no ``${VAR}`` interpolation, so values stay literal). Its keys ``STRIPE_SECRET_KEY`` become
``stripe`` / ``secret_key`` as the standard's ``getSecrets()`` reads them back
(``<SERVICE>_<KEY>`` upper-cased): with a service given, its prefix is stripped; without one, the
part before the first ``_`` is the service.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from . import changesets, documents
from .changesets import Edit

#: The biggest ``.env`` file read (the whole unified secret is at most 64 KiB anyway).
MAX_ENV_FILE_BYTES = 256 * 1024

CellStatus = Literal["new", "same", "conflict", "overwrite", "skipped"]
#: Statuses whose cell is written.
WRITTEN: tuple[CellStatus, ...] = ("new", "overwrite")

_BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class EnvFile:
    """A parsed ``.env`` file: ``values`` (key -> value, the last one of duplicates; ``None``
    for a line with no ``=``), how often each duplicated key appears, and the numbers of lines
    python-dotenv could not read. Holds values: never log or store it."""

    values: dict[str, str | None]
    duplicates: dict[str, int]
    error_lines: list[int]

    def __repr__(self) -> str:
        return f"EnvFile({len(self.values)} keys)"


def parse_env_file(text: str) -> EnvFile:
    """Parse ``text`` as a ``.env`` file with python-dotenv (``dotenv_values(stream=...)``),
    and find what it hides: keys defined more than once (the last wins, as dotenv loads them)
    and lines it could not parse (skipped). Never raises for any text."""
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    counts: Counter[str] = Counter()
    errors = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            errors.append(binding.original.line)
        elif binding.key is not None:
            counts[binding.key] += 1
    return EnvFile(
        values=dict(values),
        duplicates={k: n for k, n in counts.items() if n > 1},
        error_lines=errors,
    )


@dataclass(frozen=True)
class Entry:
    """One value of a source, mapped to a cell of the unified secret. Holds a value."""

    source: str
    environment: str
    service: str
    key: str
    value: Any = field(repr=False)
    note: str = ""  # e.g. "defined 2 times in the file: the last value is used"


@dataclass(frozen=True)
class Read:
    """What one source gave: entries and problems (sentences naming no value)."""

    source: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def env_variable_part(name: str) -> str:
    """How a service name appears in ``<SERVICE>_<KEY>`` (upper case, other characters ``_``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def read_json_source(source: str, text: str, *, environment: str, service: str) -> Read:
    """The entries of a legacy secret's text (see the module docstring for the shapes)."""
    if not text.strip():
        return Read(source, problems=["The secret is empty: there is nothing to migrate."])
    try:
        data = documents.parse(text)
    except ValueError as exc:
        return Read(
            source,
            problems=[
                f"The value is not a JSON object of keys ({type(exc).__name__}): copy it by hand "
                "in the editor."
            ],
        )
    if not isinstance(data, dict):
        return Read(
            source,
            problems=[
                f"The value is a JSON {documents.value_type(data)}, not an object of keys: copy "
                "it by hand in the editor."
            ],
        )
    if not data:
        return Read(
            source, problems=["The secret is an empty object: there is nothing to migrate."]
        )
    if service:
        return Read(source, [Entry(source, environment, service, k, v) for k, v in data.items()])
    if all(isinstance(v, dict) for v in data.values()):
        entries = [
            Entry(source, environment, svc, k, v)
            for svc, keys in data.items()
            for k, v in keys.items()
        ]
        empty = [svc for svc, keys in data.items() if not keys]
        problems = [f"Service {svc!r} has no keys: it is not migrated." for svc in empty]
        return Read(source, entries, problems)
    return Read(
        source,
        problems=[
            "The value holds keys directly (not services): choose the service they belong to."
        ],
    )


def read_env_source(source: str, env_file: EnvFile, *, environment: str, service: str) -> Read:
    """The entries of a parsed ``.env`` file (keys mapped as in the module docstring)."""
    problems = [
        f"Line {line} could not be read as KEY=value and is skipped."
        for line in env_file.error_lines
    ]
    if not env_file.values:
        problems.append("The file defines no variables: there is nothing to migrate.")
    entries = []
    prefix = env_variable_part(service) + "_" if service else ""
    for variable, value in env_file.values.items():
        notes = []
        if variable in env_file.duplicates:
            notes.append(
                f"defined {env_file.duplicates[variable]} times in the file: the last value is used"
            )
        if value is None:
            problems.append(f"{variable} has no '=': it is skipped.")
            continue
        if service:
            svc = service
            rest = variable[len(prefix) :] if variable.upper().startswith(prefix) else variable
        elif "_" in variable.strip("_"):
            head, rest = variable.strip("_").split("_", 1)
            svc = head.lower()
        else:
            problems.append(f"{variable} names no service (no SERVICE_ prefix): choose a service.")
            continue
        notes.append(f"from {variable}")
        entries.append(Entry(source, environment, svc, rest.lower(), value, "; ".join(notes)))
    return Read(source, entries, problems)


# --------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class PlannedCell:
    """One cell of the plan, for display: where a source's value goes, its status and reason,
    the state of that value (``given``: type and fingerprint) and of the value the unified
    secret holds there now (``existing``; absent for a new cell, and not looked at for a skipped
    one). No value."""

    source: str
    environment: str
    service: str
    key: str
    status: CellStatus
    given: documents.CellState
    existing: documents.CellState = documents.ABSENT
    note: str = ""

    @property
    def existing_fingerprint(self) -> str:
        """The fingerprint of the value there now ("" when there is none to compare with)."""
        return self.existing.fingerprint

    @property
    def written(self) -> bool:
        return self.status in WRITTEN


@dataclass
class Plan:
    """Where every migrated value goes in ``target``, and the changeset that puts it there.

    ``exists``: the unified secret exists (an update on ``base_version_id``) or is created.
    ``changeset`` holds values: never log, store or render it.
    """

    target: str
    exists: bool
    base_version_id: str
    cells: list[PlannedCell]
    problems: list[tuple[str, str]]  # (source, sentence)
    warnings: list[str]
    changeset: list[Edit] = field(repr=False)

    def __repr__(self) -> str:
        return f"Plan({self.target!r}, {len(self.cells)} cells)"

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("new", "same", "conflict", "overwrite", "skipped"), 0)
        for c in self.cells:
            out[c.status] += 1
        return out

    @property
    def writes(self) -> int:
        return sum(1 for c in self.cells if c.written)

    @property
    def digest(self) -> str:
        """A hash of what the person reviewed (cells, statuses, fingerprints): the final step
        refuses to write when re-reading the sources gives another plan."""
        lines = [
            "\x1f".join((c.source, c.environment, c.service, c.key, c.given.fingerprint, c.status))
            for c in self.cells
        ]
        lines.append(f"{self.target}\x1f{self.exists}\x1f{self.base_version_id}")
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _case_twin(name: str, names: Iterable[str]) -> str:
    """Another name in ``names`` equal to ``name`` but for case ("" when none)."""
    low = name.casefold()
    return next((n for n in names if n != name and n.casefold() == low), "")


def _name_note(entry: Entry) -> str:
    for kind, name in (
        ("environment", entry.environment),
        ("service", entry.service),
        ("key", entry.key),
    ):
        problem = documents.name_problem(name)
        if problem:
            return f"the {kind} name can't be used: {problem}"
    return ""


def plan(
    *,
    target: str,
    existing: Mapping[str, Any] | None,
    base_version_id: str,
    reads: Sequence[Read],
    overwrite: bool,
    fingerprint: Callable[[Any], str],
    required_environments: Sequence[str] = (),
) -> Plan:
    """Place every entry of ``reads`` on ``existing`` (``None``: the secret is created).

    Per cell: ``new`` (absent), ``same`` (equal fingerprint: nothing to write), ``conflict``
    (a different value is there: kept, unless ``overwrite``, then ``overwrite``), ``skipped``
    (a name :func:`documents.name_problem` refuses, a name differing only in case from one
    already there or planned, or a cell an earlier source already gives a different value).
    A new secret also gets the ``required_environments`` (empty). Never raises.
    """
    doc: dict[str, Any] = changesets.apply(existing or {}, [])
    edits: list[Edit] = []
    if existing is None:
        edits += [Edit("add_environment", env) for env in required_environments]
        doc = changesets.apply(doc, edits)
    cells: list[PlannedCell] = []
    planned: dict[tuple[str, str, str], PlannedCell] = {}
    warnings: list[str] = []

    def add(
        entry: Entry,
        given: documents.CellState,
        status: CellStatus,
        note: str = "",
        existing: documents.CellState = documents.ABSENT,
    ) -> None:
        notes = "; ".join(n for n in (entry.note, note) if n)
        cell = (entry.environment, entry.service, entry.key)
        placed = PlannedCell(entry.source, *cell, status, given, existing, notes)
        cells.append(placed)
        if status != "skipped":
            planned.setdefault(cell, placed)

    for read in reads:
        for entry in read.entries:
            cell = (entry.environment, entry.service, entry.key)
            given = documents.value_state(entry.value, fingerprint=fingerprint)

            note = _name_note(entry)
            if note:
                add(entry, given, "skipped", note)
                continue
            if cell in planned:
                first = planned[cell]
                if first.given.fingerprint == given.fingerprint:
                    add(entry, given, "skipped", f"{first.source} gives the same value")
                else:
                    add(
                        entry,
                        given,
                        "skipped",
                        f"{first.source} gives a different value, which is used",
                    )
                continue
            services = doc.get(entry.environment) or {}
            twin = _case_twin(entry.service, services) if entry.service not in services else ""
            keys = services.get(entry.service) or {}
            twin = twin or (_case_twin(entry.key, keys) if entry.key not in keys else "")
            if twin:
                add(
                    entry,
                    given,
                    "skipped",
                    f"differs only in case from {twin!r}, which maps to the same environment "
                    "variable: rename one of them",
                )
                continue
            present, current = documents.lookup(doc, cell)
            there = documents.value_state(current, fingerprint=fingerprint) if present else None
            if there is not None and there.fingerprint == given.fingerprint:
                add(entry, given, "same", existing=there)
                continue
            if there is not None and not overwrite:
                add(entry, given, "conflict", "kept as it is (tick overwrite to replace)", there)
                continue
            if there is not None:
                add(entry, given, "overwrite", existing=there)
            else:
                add(entry, given, "new")
            edit = Edit("set", *cell, value=entry.value)
            edits.append(edit)
            doc = changesets.apply(doc, [edit])
    for env in dict.fromkeys(c.environment for c in cells if c.written):
        if not _BRANCH_NAME.match(env):
            warnings.append(
                f"The environment {env!r} can't be an Amplify branch name (AWS_BRANCH), so no "
                "app will read it; check the mapping."
            )
    return Plan(
        target=target,
        exists=existing is not None,
        base_version_id=base_version_id,
        cells=cells,
        problems=[(r.source, p) for r in reads for p in r.problems],
        warnings=warnings,
        changeset=edits,
    )
