"""Pure document logic for unified secrets: the document itself.

A *unified secret* (the unified-secrets standard, "Required JSON Structure") holds a JSON object
``environment -> service -> key -> value``. This module parses such a SecretString, serialises
it back, classifies it against the standard, lists its cells and grid rows, and fingerprints
values. Changesets (apply, rebase, restore) are in :mod:`secrets_admin.changesets`, per-cell
differences in :mod:`secrets_admin.diffs`. It imports neither Django nor boto3 and does no I/O.

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
from collections.abc import Callable, Iterator, Mapping
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


def lookup(document: Mapping[str, Any], cell: tuple[str, str, str]) -> tuple[bool, Any]:
    """``(present, value)`` at a cell; an empty key (and service) names the service (environment)
    node itself, as in :func:`~secrets_admin.changesets.touched_cells`."""
    env, service, key = cell
    node: Any = document
    for part, present in ((env, True), (service, bool(service)), (key, bool(key))):
        if not present:
            break
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


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
# One side of a cell, without its value


@dataclass(frozen=True)
class CellState:
    """What can be shown of one side of a cell: presence, JSON type (``service`` or
    ``environment`` for a whole node) and full fingerprint ("" when not fingerprinted). Never a
    value."""

    present: bool
    type: str = ""
    fingerprint: str = ""

    @property
    def short(self) -> str:
        """The displayed part of the fingerprint (:func:`short`)."""
        return short(self.fingerprint)


#: The state of a cell that is not there.
ABSENT = CellState(False)


def value_state(value: Any, *, fingerprint: Callable[[Any], str] | None = None) -> CellState:
    """The state of a present ``value``: its :func:`value_type` and ``fingerprint(value)`` (the
    caller's keyed HMAC, e.g. ``reads.fingerprint``; "" without one)."""
    return CellState(True, value_type(value), fingerprint(value) if fingerprint else "")


def cell_state(
    document: Mapping[str, Any],
    cell: tuple[str, str, str],
    *,
    fingerprint: Callable[[Any], str] | None = None,
) -> CellState:
    """The state of ``cell`` in ``document`` (:func:`lookup`): :data:`ABSENT`, a whole service
    or environment (empty key), or :func:`value_state` of its value."""
    present, value = lookup(document, cell)
    if not present:
        return ABSENT
    if not cell[2]:
        return CellState(True, "service" if cell[1] else "environment")
    return value_state(value, fingerprint=fingerprint)
