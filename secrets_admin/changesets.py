"""Changesets: ordered edits of a unified secret's document (set a cell, delete a cell,
add or remove a service or an environment), applied without rewriting anything they do not
touch, and the write protocol's rebase rule (which cells a changeset touches, which of them
collide with what someone else changed, the changeset rebased onto a newer version), the
per-environment restore and the structure a changeset adds or removes.

Pure: imports neither Django nor boto3 and does no I/O. An :class:`Edit` holds a value: it is
left out of ``repr()`` and ``str()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .documents import environments, lookup, name_problem, serialise, value_type


class ChangesetError(ValueError):
    """A changeset cannot be applied to a document; the message says which edit and why."""


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


def _same_at(a: tuple[bool, Any], b: tuple[bool, Any], cell: tuple[str, str, str]) -> bool:
    """Whether two :func:`~secrets_admin.documents.lookup` results agree: both absent, or both
    present with the same serialisation (a service or environment node: present is enough)."""
    (a_present, a_value), (b_present, b_value) = a, b
    if not (a_present and b_present):
        return a_present == b_present
    return not cell[2] or serialise(a_value) == serialise(b_value)


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
        b, c, y = lookup(base, cell), lookup(current, cell), lookup(yours, cell)
        if _same_at(b, c, cell):
            continue  # nobody else changed it
        if cell not in cells_ and not (b[0] and not c[0]):
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
            if not lookup(doc, target)[0]:
                continue
        _apply_one(doc, edit)
        kept.append(edit)
    return kept


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
