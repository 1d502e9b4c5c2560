"""Per-cell differences, value-free: between two documents (:func:`diff`: one
:class:`CellDelta` per changed cell, the one delta type every review, save, change request and
paste preview shows) and between two environments of one document (:func:`compare_environments`).

Pure: imports neither Django nor boto3 and does no I/O. Values are compared here but never
kept: the results hold presence, JSON type and fingerprint only, so no ``repr()`` or ``str()``
of them can print a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .documents import ABSENT, CellState, environments, serialise, value_state, value_type

#: added / removed / changed (same JSON type) / type_changed; ``unchanged`` where a caller lists
#: cells that stay as they are (the bulk paste preview), never from :func:`diff`.
DeltaStatus = Literal["added", "removed", "changed", "type_changed", "unchanged"]


@dataclass(frozen=True)
class CellDelta:
    """One cell from ``before`` to ``after``: ``status`` (:data:`DeltaStatus`) and each side's
    :class:`~secrets_admin.documents.CellState` (presence, JSON type, fingerprint). No value."""

    environment: str
    service: str
    key: str
    status: DeltaStatus
    before: CellState
    after: CellState

    @property
    def label(self) -> str:
        """The change in words: ``added``, ``changed``, ``type: boolean → string`` ..."""
        if self.status == "type_changed":
            return f"type: {self.before.type} → {self.after.type}"
        return self.status.replace("_", " ")

    def as_detail(self) -> dict[str, str]:
        """The cell, its status and both full fingerprints: what an audit event's
        ``detail["cells"]`` and a change request's ``cells`` hold."""
        return {
            "environment": self.environment,
            "service": self.service,
            "key": self.key,
            "status": self.status,
            "before": self.before.fingerprint,
            "after": self.after.fingerprint,
        }


def diff(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    environment: str | None = None,
    fingerprint: Callable[[Any], str] | None = None,
) -> list[CellDelta]:
    """Per-cell differences from ``before`` to ``after`` (both conforming), in grid order.

    With ``environment`` only that environment is compared. Values are compared on their JSON
    type, then their serialisation; each side of a delta is fingerprinted with ``fingerprint``
    (the caller's keyed HMAC, e.g. ``reads.fingerprint``; without one the sides carry presence
    and type only).
    """
    changes: list[CellDelta] = []
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
                status: DeltaStatus
                if key not in a_keys:
                    status = "removed"
                elif key not in b_keys:
                    status = "added"
                elif value_type(b_keys[key]) != value_type(a_keys[key]):
                    status = "type_changed"
                elif serialise(b_keys[key]) != serialise(a_keys[key]):
                    status = "changed"
                else:
                    continue
                sides = [
                    value_state(keys[key], fingerprint=fingerprint) if key in keys else ABSENT
                    for keys in (b_keys, a_keys)
                ]
                changes.append(CellDelta(env, service, key, status, *sides))
    return changes


def count_changes(statuses: Iterable[str]) -> dict[str, int]:
    """``{"added": n, "changed": n, "removed": n}`` over the statuses of deltas from
    :func:`diff` (a type change counts as changed)."""
    out = {"added": 0, "changed": 0, "removed": 0}
    for status in statuses:
        out["changed" if status == "type_changed" else status] += 1
    return out


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
