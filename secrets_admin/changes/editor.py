"""The editor's use case: what a person asked for (:class:`EditIntent`) expanded into a
changeset against a base version, and :func:`secret_save_changes`, the one entry point of a save
(the editor, environment copies, migrations): a direct compare-and-swap save, or a change request
when the changeset edits a protected environment (invariant 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import audit, changesets, documents, permissions
from ..changesets import Edit
from ..errors import InvalidChange
from ..models import ChangeRequest
from . import change_requests
from .comparison import typed_values_compare
from .protocol import (
    MAX_REBASES,
    CellRef,
    SaveResult,
    Version,
    protected_environments,
    read_version,
    save_changeset,
)

#: In an :class:`EditIntent`, "every editable environment" (protected ones are left out).
ALL_ENVIRONMENTS = "*"

#: The types a person can give a typed value (``json``: an object, an array or any JSON text).
VALUE_TYPES = ("string", "number", "boolean", "null", "json")


def editor_type(value_type: str) -> str:
    """The editor's type for a stored value's :func:`~secrets_admin.documents.value_type`:
    objects and arrays are ``json``, the rest keep their name."""
    return "json" if value_type in ("object", "array") else value_type


def typed_value(text: str, value_type: str) -> Any:
    """The JSON value a person means by ``text`` typed as ``value_type`` (one of
    :data:`VALUE_TYPES`): a string as typed; a number as its exact JSON text
    (:class:`~secrets_admin.documents.JsonNumber`); ``true``/``false``; ``null`` (the text
    empty or ``null``); any JSON text. Raises ``ValueError`` saying what is wrong, never
    quoting the text (it may be a secret)."""
    if value_type == "string":
        return text
    stripped = text.strip()
    if value_type == "null":
        if stripped not in ("", "null"):
            raise ValueError("a null takes no value: clear the field or choose another type")
        return None
    if value_type == "boolean":
        if stripped.lower() not in ("true", "false"):
            raise ValueError("a boolean is true or false")
        return stripped.lower() == "true"
    if value_type not in ("number", "json"):
        raise ValueError(f"choose a type among {', '.join(VALUE_TYPES)}")
    try:
        value = documents.parse(stripped)
    except ValueError as exc:
        if value_type == "number":
            raise ValueError("not a number (write it like 3, -1.5 or 2e10)") from None
        raise ValueError(f"not valid JSON: {exc}") from None
    if value_type == "number" and documents.value_type(value) != "number":
        raise ValueError("not a number (write it like 3, -1.5 or 2e10)")
    return value


@dataclass
class EditIntent:
    """The edits as a person expressed them in the editor, by name (never by grid position).

    Expanded against a base document by :func:`changeset_for`; the same intent can be re-applied
    on a newer version after a conflict. Holds typed values: never log or store it.
    """

    values: dict[CellRef, str] = field(default_factory=dict)  # newly typed values (text)
    # the type of a typed value when it is not "string" (one of VALUE_TYPES); a null needs no text
    types: dict[CellRef, str] = field(default_factory=dict)
    deletes: list[CellRef] = field(default_factory=list)
    delete_keys: list[tuple[str, str]] = field(default_factory=list)  # (service, key) everywhere
    add_services: list[tuple[str, str]] = field(default_factory=list)  # (service, env or *)
    remove_services: list[tuple[str, str]] = field(default_factory=list)  # (service, env or *)
    add_environments: list[tuple[str, str]] = field(default_factory=list)  # (env, structure from)
    remove_environments: list[str] = field(default_factory=list)
    confirmation: str = ""  # the secret's name, typed to confirm removals that drop values

    def __repr__(self) -> str:
        return f"EditIntent({len(self.values)} values, {len(self.deletes)} deletes, ...)"

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.values,
                self.deletes,
                self.delete_keys,
                self.add_services,
                self.remove_services,
                self.add_environments,
                self.remove_environments,
            )
        )


def changeset_for(intent: EditIntent, document: dict[str, Any]) -> list[Edit]:
    """Expand an intent into a changeset against ``document`` (the base).

    Order: new environments (an environment "with the structure of" another gets its services
    and keys with empty-string values), new services, values, deletions, removed services,
    removed environments. "Every environment" (``*``) of a new or removed service means every
    environment that is not protected; deleting a key "everywhere" includes protected
    environments (the save then opens a change request for all of it). Raises :class:`InvalidChange` for an impossible intent (an environment that
    exists already, a structure source that does not, a cell both given a value and deleted).
    """
    edits: list[Edit] = []
    envs = documents.environments(document)
    for env, source in intent.add_environments:
        if env in document:
            raise InvalidChange(f"The environment {env} exists already.")
        if source and source not in document:
            raise InvalidChange(
                f"The environment {source} to copy the structure of does not exist."
            )
        edits.append(Edit("add_environment", env))
        envs.append(env)
        for service, keys in (document[source] if source else {}).items():
            edits.append(Edit("add_service", env, service))
            edits.extend(Edit("set", env, service, key, "") for key in keys)
    for service, where in intent.add_services:
        if where == ALL_ENVIRONMENTS:
            edits.extend(
                Edit("add_service", env, service)
                for env in envs
                if not permissions.is_protected(env) and service not in document.get(env, {})
            )
        elif service in document.get(where, {}):
            raise InvalidChange(f"The service {service} exists already in {where}.")
        else:
            edits.append(Edit("add_service", where, service))
    deletes = set(intent.deletes)
    for cell, text in intent.values.items():
        if cell in deletes:
            raise InvalidChange(
                f"{' · '.join(cell)} has both a new value and a deletion; keep one of them."
            )
        value_type = intent.types.get(cell, "string")
        try:
            value = typed_value(text, value_type)
        except ValueError as exc:
            raise InvalidChange(f"{' · '.join(cell)} ({value_type}): {exc}.") from None
        if value is None and text == "" and documents.lookup(document, cell) == (True, None):
            continue  # a null left as it was (the editor offers each cell's own type)
        edits.append(Edit("set", *cell, value=value))
    try:  # "everywhere" includes what the edits above add (a copied environment's keys)
        working = changesets.apply(document, edits)
    except changesets.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    deleted = dict.fromkeys(intent.deletes)  # ordered, with O(1) membership
    for service, key in intent.delete_keys:
        # Everywhere means everywhere: a protected environment is not dropped, it makes the
        # whole change a change request (the editor says so beside the checkbox).
        deleted.update(
            dict.fromkeys(
                (env, service, key) for env in envs if key in working.get(env, {}).get(service, {})
            )
        )
    edits.extend(Edit("delete", *cell) for cell in deleted)
    for service, where in intent.remove_services:
        targets = (
            [e for e in envs if not permissions.is_protected(e) and service in working.get(e, {})]
            if where == ALL_ENVIRONMENTS
            else [where]
        )
        edits.extend(Edit("remove_service", env, service) for env in targets)
    edits.extend(
        Edit("remove_environment", env) for env in dict.fromkeys(intent.remove_environments)
    )
    return edits


def removals_to_confirm(intent: EditIntent, document: dict[str, Any]) -> list[str]:
    """The removals in ``intent`` that drop values, in words (``environment dev (12 values)``,
    ``service stripe from dev, sandbox (4 values)``); removing what is empty needs no
    confirmation."""
    out = []
    for env in dict.fromkeys(intent.remove_environments):
        count = sum(1 for c in documents.cells(document) if c.environment == env)
        if count:
            out.append(f"environment {env} ({count} value{'s' if count != 1 else ''})")
    for service, where in intent.remove_services:
        targets = (
            [e for e in document if not permissions.is_protected(e)]
            if where == ALL_ENVIRONMENTS
            else [where]
        )
        holding = [e for e in targets if isinstance(document.get(e, {}).get(service), dict)]
        count = sum(len(document[e][service]) for e in holding)
        if count:
            out.append(
                f"service {service} from {', '.join(holding)} "
                f"({count} value{'s' if count != 1 else ''})"
            )
    return out


def confirm_removals(*, name: str, intent: EditIntent, document: dict[str, Any]) -> None:
    """Refuse removals that drop values unless the person typed the secret's name (GitHub's
    "type the repository name" pattern for destructive actions). Raises :class:`InvalidChange`
    naming what would be removed."""
    removals = removals_to_confirm(intent, document)
    if removals and intent.confirmation.strip() != name:
        raise InvalidChange(
            f"Removing {'; '.join(removals)} deletes values: type the secret's name, {name}, "
            "in the confirmation field to go ahead."
        )


def secret_save_changes(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit] | EditIntent,
    context: audit.Context,
    change_id: str,
    comment: str = "",
    max_rebases: int = MAX_REBASES,
) -> SaveResult | ChangeRequest:
    """Save ``changeset`` made on version ``base_version_id`` as one new version (compare and
    swap) when it edits no protected environment; otherwise open ONE change request for all of
    it (invariant 4: a mixed changeset, say ``dev`` and ``main``, lands together or not at all).

    ``changeset`` is a list of edits, or the editor's :class:`EditIntent` (expanded against the
    base with :func:`changeset_for`). ``comment`` goes with a change request.

    Raises, with nothing written: :class:`~secrets_admin.errors.InvalidChange` (an edit that
    can't apply, a bad change id), :class:`~secrets_admin.errors.NoChanges`,
    :class:`~secrets_admin.errors.NotEditable` (binary or non-standard base),
    :class:`~secrets_admin.aws.SecretTooLarge`, :class:`~secrets_admin.audit.AuditUnavailable`
    (fail closed), and what :func:`.change_requests.change_request_propose` raises. After writes
    that did not land: :class:`~secrets_admin.errors.Conflict`,
    :class:`~secrets_admin.errors.SaveContended`, :class:`~secrets_admin.aws.AwsError`.
    A repeat of a change id that already landed returns its result with ``already_saved``.
    An :class:`EditIntent`'s typed values are a comparison
    (:func:`.comparison.typed_values_compare`: audited, and
    :class:`~secrets_admin.ratelimit.ComparisonsLimited` past the reveal budget).
    """
    base = read_version(name, base_version_id)
    if isinstance(changeset, EditIntent):
        confirm_removals(name=name, intent=changeset, document=base.document)
        edits = changeset_for(changeset, base.document)
        # "Saved", "no changes" and a conflict page all tell whether typed values equal the
        # stored ones: recorded and charged like a reveal before any of them is computed.
        typed_values_compare(name=name, base=base, cells=changeset.values, context=context)
    else:
        edits = list(changeset)
    return save_or_propose(
        name=name,
        base=base,
        changeset=edits,
        context=context,
        change_id=change_id,
        comment=comment,
        max_rebases=max_rebases,
        action=audit.AuditAction.SAVE,
        detail={"kind": "edit"},
    )


def save_or_propose(
    *,
    name: str,
    base: Version,
    changeset: list[Edit],
    context: audit.Context,
    change_id: str,
    comment: str,
    max_rebases: int,
    action: str,
    detail: dict[str, Any],
    whole_environments: Sequence[str] = (),
) -> SaveResult | ChangeRequest:
    """Save ``changeset`` on ``base`` (a version of ``name``, already read) as one new version (``save_changeset``,
    audited as ``action`` with ``detail``; ``whole_environments`` judged as a whole for
    conflicts), or, when it edits a protected environment (one of its edits', or of
    ``whole_environments``), open ONE change request for all of it with ``comment``
    (invariant 4). Raises as :func:`secret_save_changes`."""
    protected = protected_environments(changeset) or any(
        permissions.is_protected(env) for env in whole_environments
    )
    if protected:
        return change_requests.propose_on(
            name=name,
            base=base,
            changeset=changeset,
            context=context,
            change_id=change_id,
            comment=comment,
        )
    return save_changeset(
        name=name,
        base=base,
        changeset=changeset,
        context=context,
        change_id=change_id,
        max_rebases=max_rebases,
        action=action,
        detail=detail,
        whole_environments=whole_environments,
    )
