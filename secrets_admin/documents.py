"""Pure document logic for unified secrets.

A *unified secret* (the unified-secrets standard, "Required JSON Structure") holds a JSON object ``environment -> service -> key -> value``. This module parses such a
SecretString, classifies it, lists its cells, fingerprints values, applies changesets and diffs
documents. It imports neither Django nor boto3 and does no I/O.

Rules:

* Never rewrite what was not touched: numbers keep their exact text
  (``1.10`` stays ``1.10``), key order is kept, leaves of any JSON type survive.
* A document that breaks the standard is classified with *every* reason and is never "fixed".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: The standard's own environments, shown first in this order. ``main`` is production.
STANDARD_ENVIRONMENTS: tuple[str, ...] = ("sandbox", "dev", "main")

#: AWS Secrets Manager's limit on a SecretString, in bytes of UTF-8 (AWS quota L-2F24C883).
MAX_SECRET_BYTES = 65_536

#: Deepest nesting of objects and arrays :func:`parse` accepts. The standard needs 3 levels; the
#: limit keeps every recursive walk here (serialise, copy, diff) far from Python's recursion limit.
MAX_DEPTH = 64

#: Characters shown of a fingerprint (hex). 12 hex = 48 bits: enough to tell values apart on screen.
FINGERPRINT_DISPLAY_CHARS = 12

Kind = Literal["conforming", "non_standard", "not_json", "empty", "binary", "no_value"]


class JsonNumber(str):
    """A JSON number kept as its exact source text, so ``1.10`` or ``1e400`` survive a save."""

    __slots__ = ()


class DuplicateKeyError(ValueError):
    """Raised while parsing when one JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


class ChangesetError(ValueError):
    """A changeset cannot be applied to a document; the message says which edit and why."""


@dataclass(frozen=True)
class Cell:
    """One ``(environment, service, key)`` position with its value (any JSON type).

    The value is left out of ``repr()`` and ``str()``: a secret value never reaches logs,
    tracebacks or exception text.
    """

    environment: str
    service: str
    key: str
    value: Any = field(repr=False)


@dataclass(frozen=True)
class Classified:
    """The result of :func:`classify`.

    ``document`` is the parsed object when the text is JSON (an ordered ``dict`` for conforming
    secrets), else ``None``. ``reasons`` lists every way the secret breaks the standard; it is
    empty exactly when ``kind == "conforming"``.
    """

    kind: Kind
    reasons: tuple[str, ...] = ()
    document: Any = field(default=None, repr=False)  # holds every value: structure only in reprs
    size_bytes: int = 0

    @property
    def conforming(self) -> bool:
        return self.kind == "conforming"


# --------------------------------------------------------------------------------------------
# Parsing and serialising


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(text: str) -> Any:
    """Parse JSON text exactly: ordered objects, numbers as :class:`JsonNumber`, no duplicates.

    Raises ``ValueError`` (``json.JSONDecodeError`` or :class:`DuplicateKeyError`) when the text
    is not strict JSON (RFC 8259: ``NaN``/``Infinity`` are refused), or nests objects and arrays
    deeper than :data:`MAX_DEPTH` (found by the fuzz tests: deeper text raised ``RecursionError``).
    """
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_pairs,
            parse_float=JsonNumber,
            parse_int=JsonNumber,
            parse_constant=_reject_constant,
        )
    except RecursionError:
        document = None
        too_deep = True
    else:
        too_deep = _deeper_than(document, MAX_DEPTH)
    if too_deep:
        raise ValueError(f"objects and arrays are nested more than {MAX_DEPTH} levels deep")
    return document


def _deeper_than(document: Any, limit: int) -> bool:
    """True when objects/arrays in ``document`` nest more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        if children and depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def serialise(document: Any) -> str:
    """Serialise a parsed document back to compact JSON text.

    Numbers parsed by :func:`parse` are written with their original text; strings use JSON
    escapes with non-ASCII kept as UTF-8 (so the byte size is what AWS counts).
    """
    parts: list[str] = []
    _write(document, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, JsonNumber):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int | float):
        out.append(json.dumps(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


def size_bytes(text: str) -> int:
    """Bytes of UTF-8 in ``text``: what AWS counts against :data:`MAX_SECRET_BYTES`."""
    return len(text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Classification


def value_type(value: Any) -> str:
    """The JSON type name of a leaf: string, number, boolean, null, object or array."""
    if isinstance(value, JsonNumber):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    return "array"


def classify_binary(size: int) -> Classified:
    """Classify a secret whose value is SecretBinary (never decoded here)."""
    return Classified(
        kind="binary",
        reasons=(f"the value is binary ({size} bytes), not a JSON text",),
        size_bytes=size,
    )


def classify(text: str) -> Classified:
    """Classify a SecretString against the standard's structure.

    Conforming means: a JSON object whose every value (environment) is an object whose every
    value (service) is an object (of keys). Leaves may be of any JSON type; non-string leaves
    are allowed and kept (they are reported per cell by :func:`value_type`).

    Returns a :class:`Classified` with every reason when the text does not conform. Never raises.
    """
    size = size_bytes(text)
    if text.strip() == "":
        return Classified(kind="empty", reasons=("the value is empty",), size_bytes=size)
    try:
        document = parse(text)
    except DuplicateKeyError as exc:
        return Classified(
            kind="not_json", reasons=(f"JSON with a duplicated key: {exc}",), size_bytes=size
        )
    except ValueError as exc:
        return Classified(kind="not_json", reasons=(_json_error(exc),), size_bytes=size)
    reasons = list(structure_problems(document))
    if reasons:
        return Classified(
            kind="non_standard", reasons=tuple(reasons), document=document, size_bytes=size
        )
    return Classified(kind="conforming", document=document, size_bytes=size)


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    return f"not valid JSON: {exc}"


def structure_problems(document: Any) -> Iterator[str]:
    """Yield every way ``document`` breaks ``environment -> service -> key -> value``.

    ``{}`` breaks nothing: it is the standard's structure before its first environment."""
    if not isinstance(document, Mapping):
        yield f"the top level is a JSON {value_type(document)}, not an object of environments"
        return
    for env, services in document.items():
        problem = name_problem(env)
        if problem:
            yield f"environment {env!r}: {problem}"
        if not isinstance(services, Mapping):
            yield (f"environment {env!r} holds a {value_type(services)}, not an object of services")
            continue
        for service, keys in services.items():
            problem = name_problem(service)
            if problem:
                yield f"service {env}.{service!r}: {problem}"
            if not isinstance(keys, Mapping):
                yield (f"service {env}.{service} holds a {value_type(keys)}, not an object of keys")
                continue
            for key in keys:
                problem = name_problem(key)
                if problem:
                    yield f"key {env}.{service}.{key!r}: {problem}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name_problem(name: str) -> str | None:
    """Why ``name`` is unusable as an environment, service or key name, or ``None``.

    Refused: empty, leading/trailing white space, control characters (they cannot be shown or
    typed back reliably, and the standard maps names to environment variables).
    """
    if name == "":
        return "the name is empty"
    if name != name.strip():
        return "the name has leading or trailing spaces"
    if _CONTROL.search(name):
        return "the name contains a control character"
    return None


# --------------------------------------------------------------------------------------------
# Reading a conforming document


def environments(document: Mapping[str, Any]) -> list[str]:
    """Environment names: the standard's (sandbox, dev, main) first, then the rest as stored."""
    standard = [e for e in STANDARD_ENVIRONMENTS if e in document]
    return standard + [e for e in document if e not in STANDARD_ENVIRONMENTS]


def services(document: Mapping[str, Any]) -> list[str]:
    """Every service name across environments, in first-seen order."""
    seen: dict[str, None] = {}
    for env in environments(document):
        for service in document[env]:
            seen.setdefault(service, None)
    return list(seen)


def cells(document: Mapping[str, Any]) -> Iterator[Cell]:
    """Every cell of a conforming document, environment by environment."""
    for env in environments(document):
        for service, keys in document[env].items():
            for key, value in keys.items():
                yield Cell(env, service, key, value)


@dataclass
class GridRow:
    """One ``(service, key)`` row: its value per environment (absent environments missing).

    ``repr()`` and ``str()`` name the environments that hold the key, never the values.
    """

    service: str
    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"GridRow(service={self.service!r}, key={self.key!r}, "
            f"environments={list(self.values)!r})"
        )


@dataclass
class Grid:
    """The environment x (service, key) view of a conforming document."""

    environments: list[str]
    rows: list[GridRow]

    def missing(self, row: GridRow) -> list[str]:
        """Environments in which ``row``'s key is absent while another environment has it."""
        return [env for env in self.environments if env not in row.values]

    def missing_counts(self) -> dict[str, int]:
        """Drift: per environment, how many rows that another environment has are absent from it."""
        return {
            env: sum(1 for row in self.rows if env not in row.values) for env in self.environments
        }


def grid(document: Mapping[str, Any]) -> Grid:
    """Build the grid: rows grouped by service then key (first-seen order), one column per env."""
    envs = environments(document)
    rows: dict[tuple[str, str], GridRow] = {}
    for service in services(document):
        for env in envs:
            for key, value in document[env].get(service, {}).items():
                row = rows.setdefault((service, key), GridRow(service, key))
                row.values[env] = value
    return Grid(environments=envs, rows=list(rows.values()))


def fingerprint(key: bytes, value: Any) -> str:
    """``HMAC-SHA256(key, canonical value)`` in hex (64 chars); compares values without showing them.

    Strings are fingerprinted as their UTF-8; other JSON values as their canonical serialisation
    prefixed with their type, so the string ``"1"`` and the number ``1`` differ.
    """
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        data = b"s:" + value.encode("utf-8")
    else:
        data = b"j:" + serialise(value).encode("utf-8")
    return hmac.digest(key, data, hashlib.sha256).hex()


def short(fp: str) -> str:
    """The displayed part of a fingerprint."""
    return fp[:FINGERPRINT_DISPLAY_CHARS]


def get_cell(document: Mapping[str, Any], environment: str, service: str, key: str) -> Any:
    """The value at a cell. Raises ``KeyError`` when any level is absent or not an object."""
    services_ = document[environment]
    if not isinstance(services_, Mapping):
        raise KeyError(environment)
    keys = services_[service]
    if not isinstance(keys, Mapping):
        raise KeyError(service)
    return keys[key]


# --------------------------------------------------------------------------------------------
# Changesets


@dataclass(frozen=True)
class Edit:
    """One edit of a changeset.

    ``op`` is one of:

    * ``set``: set ``environment.service.key`` to ``value`` (creating the service and environment
      when absent);
    * ``delete``: remove the key (it must exist);
    * ``add_service`` / ``remove_service``: an empty service in ``environment`` / remove it;
    * ``add_environment`` / ``remove_environment``: an empty environment / remove it.
    """

    op: Literal[
        "set", "delete", "add_service", "remove_service", "add_environment", "remove_environment"
    ]
    environment: str
    service: str = ""
    key: str = ""
    value: Any = field(default=None, repr=False)  # a secret value: kept out of reprs and logs

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.environment, self.service, self.key)


Changeset = Sequence[Edit]


def apply(document: Mapping[str, Any], changeset: Changeset) -> dict[str, Any]:
    """Return a new document: ``document`` with ``changeset`` applied in order.

    The input is not modified. Untouched cells keep their exact value and type, and key order
    is kept; new keys go at the end of their object. Raises :class:`ChangesetError` naming the
    edit when it cannot apply (a name that :func:`name_problem` refuses, a missing cell to
    delete, a level that is not an object).
    """
    new: dict[str, Any] = _copy_tree(document)
    for edit in changeset:
        _apply_one(new, edit)
    return new


def _copy_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


def _check_name(kind: str, name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise ChangesetError(f"{kind} {name!r}: {problem}")


def _object_at(container: dict[str, Any], name: str, label: str) -> dict[str, Any]:
    node = container[name]
    if not isinstance(node, dict):
        raise ChangesetError(f"{label} is a {value_type(node)}, not an object")
    return node


def _apply_one(doc: dict[str, Any], edit: Edit) -> None:
    env, service, key = edit.cell
    if edit.op == "add_environment":
        _check_name("environment", env)
        doc.setdefault(env, {})
        return
    if edit.op == "remove_environment":
        if env not in doc:
            raise ChangesetError(f"environment {env!r} does not exist")
        del doc[env]
        return
    if edit.op in ("set", "add_service"):
        _check_name("environment", env)
        _check_name("service", service)
        services_ = _object_at(doc, env, env) if env in doc else doc.setdefault(env, {})
        keys = (
            _object_at(services_, service, f"{env}.{service}")
            if service in services_
            else services_.setdefault(service, {})
        )
        if edit.op == "set":
            _check_name("key", key)
            keys[key] = edit.value
        return
    if env not in doc:
        raise ChangesetError(f"environment {env!r} does not exist")
    services_ = _object_at(doc, env, env)
    if service not in services_:
        raise ChangesetError(f"service {env}.{service} does not exist")
    if edit.op == "remove_service":
        del services_[service]
        return
    if edit.op == "delete":
        keys = _object_at(services_, service, f"{env}.{service}")
        if key not in keys:
            raise ChangesetError(f"key {env}.{service}.{key} does not exist")
        del keys[key]
        return
    raise ChangesetError(f"unknown edit {edit.op!r}")


def touched_cells(document: Mapping[str, Any], changeset: Changeset) -> set[tuple[str, str, str]]:
    """Cells a changeset can change, expanded for whole services and environments.

    Used by the write protocol's rebase test: a changeset may be rebased onto a newer version
    only if none of these cells differ between base and current.
    """
    out: set[tuple[str, str, str]] = set()
    for edit in changeset:
        if edit.op in ("set", "delete"):
            out.add(edit.cell)
        elif edit.op in ("remove_service", "add_service"):
            keys = document.get(edit.environment, {})
            keys = keys.get(edit.service, {}) if isinstance(keys, Mapping) else {}
            out.add((edit.environment, edit.service, ""))
            if isinstance(keys, Mapping):
                out.update((edit.environment, edit.service, k) for k in keys)
        else:
            out.add((edit.environment, "", ""))
            services_ = document.get(edit.environment, {})
            if isinstance(services_, Mapping):
                for s, keys in services_.items():
                    out.add((edit.environment, s, ""))
                    if isinstance(keys, Mapping):
                        out.update((edit.environment, s, k) for k in keys)
    return out


_MISSING = object()


def _lookup(document: Mapping[str, Any], cell: tuple[str, str, str]) -> Any:
    env, service, key = cell
    node: Any = document
    for part, present in ((env, True), (service, bool(service)), (key, bool(key))):
        if not present:
            break
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def cells_changed_between(
    base: Mapping[str, Any], current: Mapping[str, Any], cells_: set[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """The cells among ``cells_`` whose value (or presence) differs between two documents.

    A cell whose key part is empty stands for a whole service (or environment when the service
    is empty too): it counts as changed when that node was added or removed. Values are compared
    on their canonical serialisation, so a type change counts.
    """
    changed = []
    for cell in sorted(cells_):
        a, b = _lookup(base, cell), _lookup(current, cell)
        if (a is _MISSING) != (b is _MISSING) or (
            cell[2] and a is not _MISSING and serialise(a) != serialise(b)
        ):
            changed.append(cell)
    return changed


def lookup(document: Mapping[str, Any], cell: tuple[str, str, str]) -> tuple[bool, Any]:
    """``(present, value)`` at a cell; an empty key (and service) names the service (environment)
    node itself, as in :func:`touched_cells`."""
    found = _lookup(document, cell)
    return (False, None) if found is _MISSING else (True, found)


def _same_at(a: Any, b: Any, cell: tuple[str, str, str]) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return not cell[2] or serialise(a) == serialise(b)


def conflicting_cells(
    base: Mapping[str, Any],
    current: Mapping[str, Any],
    changeset: Changeset,
    *,
    whole_environments: Sequence[str] = (),
) -> list[tuple[str, str, str]]:
    """The cells where a changeset made on ``base`` collides with what changed in ``current``.

    The write protocol's rebase test: a cell collides when someone else changed it between base
    and current (value, type or presence) and it is among the cells the changeset touches
    (:func:`touched_cells` on both documents), unless they already made it what the changeset
    makes it. The service and environment a ``set`` writes into collide when someone else removed
    them. ``whole_environments`` widens the touched cells to every cell of those environments (a
    per-environment restore must not be rebased over someone else's edit of that environment).

    An empty result means :func:`rebase_changeset` onto ``current`` loses nothing: every touched
    cell ends as the changeset says, every other cell as ``current`` has it.
    """
    yours = apply(base, changeset)
    cells_ = touched_cells(base, changeset) | touched_cells(current, changeset)
    for env in whole_environments:
        cells_.add((env, "", ""))
        for doc in (base, current):
            services_ = doc.get(env)
            if isinstance(services_, Mapping):
                for service, keys in services_.items():
                    cells_.add((env, service, ""))
                    if isinstance(keys, Mapping):
                        cells_.update((env, service, k) for k in keys)
    containers: set[tuple[str, str, str]] = set()
    for edit in changeset:
        if edit.op == "set":
            containers.update({(edit.environment, "", ""), (edit.environment, edit.service, "")})
    out = []
    for cell in sorted(cells_ | containers):
        b, c, y = _lookup(base, cell), _lookup(current, cell), _lookup(yours, cell)
        if _same_at(b, c, cell):
            continue  # nobody else changed it
        if cell not in cells_ and not (b is not _MISSING and c is _MISSING):
            continue  # a container someone else created: writing into it loses nothing
        if _same_at(c, y, cell):
            continue  # they already made the same change
        out.append(cell)
    return out


def rebase_changeset(current: Mapping[str, Any], changeset: Changeset) -> list[Edit]:
    """The changeset to apply onto ``current`` after :func:`conflicting_cells` found nothing.

    Drops deletions whose target is already gone (someone else made the same deletion), so the
    rest applies; every other edit is kept in order.
    """
    doc = _copy_tree(current)
    kept: list[Edit] = []
    for edit in changeset:
        if edit.op in ("delete", "remove_service", "remove_environment"):
            target = (
                edit.cell
                if edit.op == "delete"
                else (edit.environment, edit.service if edit.op == "remove_service" else "", "")
            )
            if _lookup(doc, target) is _MISSING:
                continue
        _apply_one(doc, edit)
        kept.append(edit)
    return kept


@dataclass(frozen=True)
class StructureChange:
    """An environment or a service added or removed (``service`` empty for an environment)."""

    status: Literal["added", "removed"]
    environment: str
    service: str = ""


def structure_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[StructureChange]:
    """Environments and services added or removed from ``before`` to ``after`` (both conforming);
    the services of a removed environment are not listed separately."""
    out: list[StructureChange] = []
    for env in environments({**dict(before), **dict(after)}):
        if env not in after:
            out.append(StructureChange("removed", env))
            continue
        if env not in before:
            out.append(StructureChange("added", env))
        b_services, a_services = before.get(env, {}), after[env]
        for service in dict.fromkeys([*b_services, *a_services]):
            if service not in a_services:
                out.append(StructureChange("removed", env, service))
            elif service not in b_services:
                out.append(StructureChange("added", env, service))
    return out


_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]+")
#: AWS's maximum secret name length (API model ``NameType``).
MAX_SECRET_NAME = 512


def secret_name_problem(name: str, suffix: str) -> str | None:
    """Why ``name`` can't be a unified secret's name, or ``None``.

    AWS (CreateSecret ``Name``): 1-512 ASCII letters, digits and ``/_+=.@-``, and not ending in a
    hyphen followed by six characters (it would look like an ARN suffix). The standard: the name
    is ``<repo>`` followed by ``suffix`` (``-secrets``).
    """
    if not name.endswith(suffix) or name == suffix:
        return f"the name must be the repository name followed by {suffix}"
    if not _SECRET_NAME.fullmatch(name):
        return "AWS allows only ASCII letters, digits and / _ + = . @ - in a secret name"
    if len(name) > MAX_SECRET_NAME:
        return f"AWS allows at most {MAX_SECRET_NAME} characters in a secret name"
    if len(name) >= 7 and name[-7] == "-":
        return "AWS advises against names ending in a hyphen and six characters (ARN suffix)"
    return None


# --------------------------------------------------------------------------------------------
# Diff


@dataclass(frozen=True)
class CellChange:
    """One cell's difference between two documents. ``status`` is added/removed/changed/type_changed.

    ``before`` and ``after`` are values: they are left out of ``repr()`` and ``str()``.
    """

    environment: str
    service: str
    key: str
    status: Literal["added", "removed", "changed", "type_changed"]
    before: Any = field(default=None, repr=False)
    after: Any = field(default=None, repr=False)


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], *, environment: str | None = None
) -> list[CellChange]:
    """Per-cell differences from ``before`` to ``after`` (both conforming), in grid order.

    With ``environment`` only that environment is compared.
    """
    changes: list[CellChange] = []
    envs = environments({**dict(before), **dict(after)})
    for env in envs:
        if environment is not None and env != environment:
            continue
        b_services = before.get(env, {})
        a_services = after.get(env, {})
        for service in dict.fromkeys([*b_services, *a_services]):
            b_keys = b_services.get(service, {})
            a_keys = a_services.get(service, {})
            for key in dict.fromkeys([*b_keys, *a_keys]):
                if key not in a_keys:
                    changes.append(CellChange(env, service, key, "removed", b_keys[key], None))
                elif key not in b_keys:
                    changes.append(CellChange(env, service, key, "added", None, a_keys[key]))
                else:
                    bv, av = b_keys[key], a_keys[key]
                    if value_type(bv) != value_type(av):
                        changes.append(CellChange(env, service, key, "type_changed", bv, av))
                    elif serialise(bv) != serialise(av):
                        changes.append(CellChange(env, service, key, "changed", bv, av))
    return changes


def restore_changeset(
    current: Mapping[str, Any], old: Mapping[str, Any], environment: str
) -> list[Edit]:
    """The changeset that makes ``environment`` of ``current`` equal to its content in ``old``.

    Other environments are not touched ("roll back" is per environment). When the
    environment did not exist in ``old`` the changeset removes it.
    """
    if environment not in old:
        return [Edit("remove_environment", environment)] if environment in current else []
    edits: list[Edit] = []
    if environment not in current:
        edits.append(Edit("add_environment", environment))
    cur_services = current.get(environment, {})
    old_services = old[environment]
    for service in cur_services:
        if service not in old_services:
            edits.append(Edit("remove_service", environment, service))
    for service, keys in old_services.items():
        cur_keys = cur_services.get(service)
        if cur_keys is None:
            edits.append(Edit("add_service", environment, service))
            cur_keys = {}
        for key in cur_keys:
            if key not in keys:
                edits.append(Edit("delete", environment, service, key))
        for key, value in keys.items():
            if key not in cur_keys or serialise(cur_keys[key]) != serialise(value):
                edits.append(Edit("set", environment, service, key, value))
    return edits


# --------------------------------------------------------------------------------------------
# Comparing two environments of one document

ComparisonStatus = Literal["only_a", "only_b", "same", "different", "different_type"]

#: Statuses in the order they are counted and shown, with the words the UI uses.
COMPARISON_STATUSES: dict[ComparisonStatus, str] = {
    "only_a": "only in A",
    "only_b": "only in B",
    "same": "same value",
    "different": "different value",
    "different_type": "different type",
}


@dataclass(frozen=True)
class Comparison:
    """One ``(service, key)`` row of a comparison of environments A and B. Never holds a value.

    ``type_a``/``type_b`` are :func:`value_type` names ("" where the key is absent);
    ``fingerprint_a``/``fingerprint_b`` are what the ``fingerprint`` callable returned ("" where
    absent).
    """

    service: str
    key: str
    status: ComparisonStatus
    type_a: str = ""
    type_b: str = ""
    fingerprint_a: str = ""
    fingerprint_b: str = ""

    @property
    def differs(self) -> bool:
        return self.status != "same"


def _keys_of(document: Mapping[str, Any], environment: str) -> dict[str, Mapping[str, Any]]:
    """``service -> keys`` of one environment; levels that are absent or not objects count as empty."""
    services_ = document.get(environment)
    if not isinstance(services_, Mapping):
        return {}
    return {s: k for s, k in services_.items() if isinstance(k, Mapping)}


def compare_environments(
    document: Mapping[str, Any], a: str, b: str, *, fingerprint: Callable[[Any], str]
) -> list[Comparison]:
    """Compare environments ``a`` and ``b`` of one document, key by key, without keeping values.

    Every ``(service, key)`` present in either environment gives one :class:`Comparison`, in
    grid order (services first seen in A, then B; keys likewise). Values are compared only
    through ``fingerprint(value)`` (``reads.fingerprint``: a keyed HMAC), after their JSON types:

    * ``only_a`` / ``only_b``: the key is in one environment only;
    * ``different_type``: both have it, with different JSON types (``"1"`` and ``1``);
    * ``same`` / ``different``: same type, equal / unequal fingerprints.

    An environment that is absent (or not an object) counts as empty. Never raises for a
    conforming document; ``a == b`` gives every row ``same``.
    """
    a_services, b_services = _keys_of(document, a), _keys_of(document, b)
    rows: list[Comparison] = []
    for service in dict.fromkeys([*a_services, *b_services]):
        a_keys = a_services.get(service, {})
        b_keys = b_services.get(service, {})
        for key in dict.fromkeys([*a_keys, *b_keys]):
            if key not in b_keys:
                va = a_keys[key]
                rows.append(
                    Comparison(service, key, "only_a", value_type(va), "", fingerprint(va), "")
                )
                continue
            vb = b_keys[key]
            if key not in a_keys:
                rows.append(
                    Comparison(service, key, "only_b", "", value_type(vb), "", fingerprint(vb))
                )
                continue
            va = a_keys[key]
            ta, tb = value_type(va), value_type(vb)
            fa, fb = fingerprint(va), fingerprint(vb)
            status: ComparisonStatus = (
                "different_type" if ta != tb else "same" if fa == fb else "different"
            )
            rows.append(Comparison(service, key, status, ta, tb, fa, fb))
    return rows


def count_comparisons(rows: Sequence[Comparison]) -> dict[ComparisonStatus, int]:
    """How many rows have each status, every status present (zero when none)."""
    statuses = [row.status for row in rows]
    return {s: statuses.count(s) for s in COMPARISON_STATUSES}
