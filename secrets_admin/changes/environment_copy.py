"""Copy rows (keys, or whole services) from one environment of a secret to another, with their
values or as structure only. "Promote" is kept for moving ``AWSCURRENT``; this is a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import audit
from ..changesets import Edit
from ..errors import InvalidChange, NoChanges
from ..models import ChangeRequest
from .editor import secret_save_changes
from .protocol import SaveResult, read_version

#: A copied row: ``(service, key)``; ``key == ""`` means the whole service.
CopyRow = tuple[str, str]


@dataclass(frozen=True)
class CopyChoice:
    """What a person chose to copy: ``rows`` of environment ``source`` into ``target``, with
    their values or as structure only (names only: values are read on the server)."""

    source: str
    target: str
    rows: tuple[CopyRow, ...]
    with_values: bool

    def changeset(self, document: dict[str, Any]) -> list[Edit]:
        """:func:`environment_copy_changeset` of this choice on ``document``."""
        return environment_copy_changeset(
            document,
            source=self.source,
            target=self.target,
            rows=self.rows,
            with_values=self.with_values,
        )


def environment_copy_changeset(
    document: dict[str, Any],
    *,
    source: str,
    target: str,
    rows: Sequence[CopyRow],
    with_values: bool,
) -> list[Edit]:
    """The ``set`` edits that copy ``rows`` of environment ``source`` into ``target``.

    ``rows`` are ``(service, key)`` pairs, ``(service, "")`` for every key of a service. With
    ``with_values`` each value is copied exactly (type included: numbers, booleans, objects stay
    what they are); without, the copy is structure only: a key that ``target`` lacks gets an
    empty string to fill in later, and a key it already has is left alone (structure only never
    blanks a value). A service with no keys is added empty. Values come from ``document`` (the
    version on screen, read on the server), never from the browser.

    Raises :class:`InvalidChange` when nothing is chosen, ``source == target``, or a row is not
    in ``source``.
    """
    if source == target:
        raise InvalidChange("Choose two different environments to copy between.")
    if not rows:
        raise InvalidChange("Choose at least one row (or a whole service) to copy.")
    if not isinstance(document.get(source), dict):
        raise InvalidChange(f"This version has no environment {source!r}.")
    edits: list[Edit] = []
    seen: set[tuple[str, str]] = set()
    found = document.get(target)
    have: dict[str, Any] = found if isinstance(found, dict) else {}
    for service, key in rows:
        keys = document[source].get(service)
        if not isinstance(keys, dict) or (key and key not in keys):
            where = f"{service} · {key}" if key else service
            raise InvalidChange(f"{where} is not in {source} in this version; compare again.")
        if not keys and service not in have:
            edits.append(Edit("add_service", target, service))
        for k in [key] if key else list(keys):
            if (service, k) in seen:
                continue
            seen.add((service, k))
            if with_values:
                edits.append(Edit("set", target, service, k, keys[k]))
            elif k not in (have.get(service) or {}):
                edits.append(Edit("set", target, service, k, ""))
    return edits


def environment_copy(
    *,
    name: str,
    base_version_id: str,
    source: str,
    target: str,
    rows: Sequence[CopyRow],
    with_values: bool,
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> SaveResult | ChangeRequest:
    """Copy ``rows`` from ``source`` to ``target`` as one changeset on ``base_version_id``,
    saved through the normal compare-and-swap path (:func:`_submit`); a promotion into a
    protected environment opens a change request instead (invariant 4), with ``comment`` for the
    approvers.

    Values are read here from the base version (one ``GetSecretValue``), never posted by the
    browser. Raises as :func:`.editor.secret_save_changes`.
    """
    base = read_version(name, base_version_id)
    changeset = CopyChoice(source, target, tuple(rows), with_values).changeset(base.document)
    if not changeset:
        raise NoChanges()
    return secret_save_changes(
        name=name,
        base_version_id=base_version_id,
        changeset=changeset,
        context=context,
        change_id=change_id,
        comment=comment,
    )
