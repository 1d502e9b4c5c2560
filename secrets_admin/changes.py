"""Write use cases: save a changeset (compare-and-swap), restore one environment, create a secret,
cancel a deletion. Business actions are ``<entity>_<action>`` functions with keyword-only
arguments (STYLE.md); views only translate requests into these calls.

The save follows DESIGN.md's write protocol, steps 1-6:

1. read the base version by ``VersionId`` (the version the editor showed);
2. ``documents.apply`` the changeset, serialise, refuse above 65,536 bytes (before any write);
3. stage the new document with the temporary label and a ``ClientRequestToken`` derived from the
   change (:func:`request_token`), so a double submit creates one version;
4. swap ``AWSCURRENT`` onto it with ``RemoveFromVersionId`` = base (``aws.promote``);
5. when someone else saved in between, drop the label, re-read current, and rebase when none of
   the touched cells changed (:data:`MAX_REBASES` times at most), else raise :class:`Conflict`;
6. drop the temporary label (always, also on failure).

Cost of one uncontended save: ``GetSecretValue`` (base) + ``PutSecretValue`` +
``UpdateSecretVersionStage`` x 2 = 4 calls, 3 of them writes. A conflict adds ``DescribeSecret``
(the swap failed), ``UpdateSecretVersionStage`` (drop the label) and ``GetSecretValue``
(current); each rebase then repeats the 3 writes.

Audit (invariant 3, fail closed): one ``<action>.attempted`` event is committed before the first
write; the outcome event (``succeeded`` / ``conflicted`` / ``failed``) carries ``base_version``,
``new_version`` and, in ``detail["cells"]``, one entry per changed cell with the full
fingerprints before and after (never a value). One event per save, not one per cell, so a save
stays one line of history whatever its size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import (
    audit,
    aws,
    compliance,
    documents,
    lint,
    listing,
    migration,
    notifications,
    permissions,
    reads,
)
from .documents import Edit
from .models import Approval, AuditEvent, ChangeRequest

log = logging.getLogger(__name__)

#: Rebases after "someone else saved" before giving up (DESIGN.md step 5: bounded).
MAX_REBASES = 3
#: Versions created in the last 24 hours above which the editor warns: AWS keeps about 100
#: versions per secret and prunes unlabelled ones only once they are 24 hours old.
VERSION_WARNING_24H = 50
VERSION_QUOTA = 100

Cell = tuple[str, str, str]


# --------------------------------------------------------------------------------------------
# Outcomes and refusals


class ChangeRefused(Exception):
    """The portal will not make this change; ``message`` says why and what to do.

    Raised before any write, except :class:`SaveContended` (whose writes did not land).
    """

    code = "Refused"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NeedsApproval(ChangeRefused):
    code = "NeedsApproval"

    def __init__(self, environments: Sequence[str]) -> None:
        self.environments = list(environments)
        names = ", ".join(self.environments)
        super().__init__(
            f"Edits to {names} need approval by a second person ({names} is a protected "
            "environment), so nothing was saved here. Make the edits in the editor: saving them "
            "there opens a change request for an approver."
        )


class NotEditable(ChangeRefused):
    code = "NotEditable"


class InvalidChange(ChangeRefused):
    code = "InvalidChange"


class NoChanges(ChangeRefused):
    code = "NoChanges"

    def __init__(self) -> None:
        super().__init__("No changes: the edits leave the secret as it is, so nothing was saved.")


class SaveContended(ChangeRefused):
    code = "SaveContended"

    def __init__(self) -> None:
        super().__init__(
            "Others saved this secret several times while yours was being saved, so it was not "
            "saved (nothing of yours landed). Re-apply your edits on the current version."
        )


class SecretExists(ChangeRefused):
    code = "SecretExists"


class SecretPendingDeletion(ChangeRefused):
    """A secret of that name is scheduled for deletion; an admin may restore it instead."""

    code = "SecretPendingDeletion"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"A secret named {name} exists but is scheduled for deletion, so a new one can't be "
            "created with that name. An admin can restore it (cancel the deletion) instead."
        )


class SavedUnrecorded(Exception):
    """The write landed but its outcome could not be added to the audit log (its attempt is)."""

    def __init__(self, version_id: str) -> None:
        self.version_id = version_id
        self.message = (
            f"Your change was saved as version {version_id}, but the audit log could not record "
            "the outcome (its attempt is recorded). Tell the portal's operators."
        )
        super().__init__(self.message)


@dataclass(frozen=True)
class CellState:
    """One side of a cell in a comparison: presence, JSON type and full fingerprint. No value."""

    present: bool
    type: str = ""
    fingerprint: str = ""

    @property
    def short(self) -> str:
        return documents.short(self.fingerprint)


def _state(document: Any, cell: Cell) -> CellState:
    present, value = documents.lookup(document, cell)
    if not present:
        return CellState(False)
    if not cell[2]:
        return CellState(True, "service" if cell[1] else "environment")
    return CellState(True, documents.value_type(value), reads.fingerprint(value))


@dataclass(frozen=True)
class CellDelta:
    """One changed cell: ``status`` is added/removed/changed/type_changed; before and after."""

    environment: str
    service: str
    key: str
    status: str
    before: CellState
    after: CellState

    @property
    def label(self) -> str:
        return self.status.replace("_", " ")

    def as_detail(self) -> dict[str, str]:
        return {
            "environment": self.environment,
            "service": self.service,
            "key": self.key,
            "status": self.status,
            "before": self.before.fingerprint,
            "after": self.after.fingerprint,
        }


@dataclass(frozen=True)
class Preview:
    """What a changeset does to a base version: cells, structure, size. Never a value."""

    name: str
    base_version_id: str
    cells: list[CellDelta]
    structure: list[documents.StructureChange]
    size_bytes: int
    base_size_bytes: int
    needs_approval: list[str] = field(default_factory=list)  # protected environments edited

    @property
    def over_by(self) -> int:
        return max(0, self.size_bytes - documents.MAX_SECRET_BYTES)

    @property
    def counts(self) -> dict[str, int]:
        out = {"added": 0, "changed": 0, "removed": 0}
        for c in self.cells:
            out["changed" if c.status == "type_changed" else c.status] += 1
        return out

    @property
    def environments(self) -> list[str]:
        envs = [c.environment for c in self.cells] + [s.environment for s in self.structure]
        return list(dict.fromkeys(envs))


@dataclass(frozen=True)
class SaveResult:
    """A landed save (or a repeat of one). ``already_saved``: this change id had landed before
    (nothing new written); ``rebased``: how many times it was moved onto a newer version."""

    name: str
    new_version_id: str
    base_version_id: str
    cells: list[CellDelta] = field(default_factory=list)
    structure: list[documents.StructureChange] = field(default_factory=list)
    rebased: int = 0
    already_saved: bool = False
    size_bytes: int = 0


@dataclass(frozen=True)
class ConflictCell:
    environment: str
    service: str
    key: str
    base: CellState
    theirs: CellState
    yours: CellState


class Conflict(Exception):
    """Someone else changed cells this changeset touches. Nothing of the change landed.

    ``cells`` give base / theirs / yours per conflicting cell; ``base_version_id``,
    ``current_version_id`` (theirs) and ``yours_version_id`` (the staged, never-current version)
    are real versions, so permitted roles can reveal each side with ``reads.cell_reveal``.
    """

    def __init__(
        self,
        *,
        name: str,
        cells: list[ConflictCell],
        base_version_id: str,
        current_version_id: str,
        yours_version_id: str,
    ) -> None:
        self.name = name
        self.cells = cells
        self.base_version_id = base_version_id
        self.current_version_id = current_version_id
        self.yours_version_id = yours_version_id
        self.message = (
            f"Someone else changed {len(cells)} of the cells you edited after you opened the "
            "secret. Nothing was saved. Compare the versions and re-apply your edits on the "
            "current version."
        )
        super().__init__(self.message)


# --------------------------------------------------------------------------------------------
# Reading versions for writing


@dataclass(frozen=True)
class Version:
    """A conforming version: its id, parsed document and text size. Holds values: never render."""

    version_id: str
    document: dict[str, Any]
    size_bytes: int

    def __repr__(self) -> str:
        return f"Version({self.version_id!r})"


def read_version(name: str, version_id: str | None = None) -> Version:
    """One ``GetSecretValue`` (by ``VersionId``, or ``AWSCURRENT`` when ``None``).

    Raises :class:`NotEditable` when the version is binary or breaks the standard (invariant 5:
    never "fixed"), and :class:`~secrets_admin.aws.AwsError` (a secret scheduled for deletion
    answers ``ScheduledForDeletion``).
    """
    value = aws.read_version(name, version_id) if version_id else aws.read_current(name)
    classified = listing.classify_value(value)
    if not classified.conforming:
        raise NotEditable(
            "This version does not follow the unified-secrets standard ("
            + "; ".join(classified.reasons[:3])
            + "), so the portal will not rewrite it."
        )
    return Version(value.version_id, classified.document, classified.size_bytes)


def preview(*, name: str, base: Version, changeset: Sequence[Edit]) -> Preview:
    """Apply ``changeset`` to ``base`` in memory and describe the result (no AWS call).

    Raises :class:`InvalidChange` when an edit can't apply (``documents.ChangesetError``).
    """
    try:
        after = documents.apply(base.document, changeset)
    except documents.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    return compare(name, base, after)


def compare(name: str, base: Version, after: dict[str, Any]) -> Preview:
    """Per-cell and structural differences from ``base`` to the document ``after``. No AWS call."""
    cells = [
        CellDelta(
            c.environment,
            c.service,
            c.key,
            c.status,
            _state(base.document, (c.environment, c.service, c.key)),
            _state(after, (c.environment, c.service, c.key)),
        )
        for c in documents.diff(base.document, after)
    ]
    return Preview(
        name=name,
        base_version_id=base.version_id,
        cells=cells,
        structure=documents.structure_changes(base.document, after),
        size_bytes=documents.size_bytes(documents.serialise(after)),
        base_size_bytes=base.size_bytes,
    )


def protected_environments(changeset: Sequence[Edit]) -> list[str]:
    """The protected environments (``permissions.is_protected``) a changeset edits."""
    return sorted({e.environment for e in changeset if permissions.is_protected(e.environment)})


def refuse_protected(changeset: Sequence[Edit]) -> None:
    """Raise :class:`NeedsApproval` when the changeset edits a protected environment
    (invariant 4; approvals come with change requests)."""
    protected = protected_environments(changeset)
    if protected:
        raise NeedsApproval(protected)


# --------------------------------------------------------------------------------------------
# What the editor asks for


#: In an :class:`EditIntent`, "every editable environment" (protected ones are left out).
ALL_ENVIRONMENTS = "*"


@dataclass
class EditIntent:
    """The edits as a person expressed them in the editor, by name (never by grid position).

    Expanded against a base document by :func:`changeset_for`; the same intent can be re-applied
    on a newer version after a conflict. Holds typed values: never log or store it.
    """

    values: dict[Cell, str] = field(default_factory=dict)  # newly typed values (strings)
    deletes: list[Cell] = field(default_factory=list)
    delete_keys: list[tuple[str, str]] = field(default_factory=list)  # (service, key) everywhere
    add_services: list[tuple[str, str]] = field(default_factory=list)  # (service, env or *)
    remove_services: list[tuple[str, str]] = field(default_factory=list)  # (service, env or *)
    add_environments: list[tuple[str, str]] = field(default_factory=list)  # (env, structure from)
    remove_environments: list[str] = field(default_factory=list)

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
    removed environments. "Every environment" (``*``) means every environment that is not
    protected. Raises :class:`InvalidChange` for an impossible intent (an environment that
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
    for cell, value in intent.values.items():
        if cell in intent.deletes:
            raise InvalidChange(
                f"{' · '.join(cell)} has both a new value and a deletion; keep one of them."
            )
        edits.append(Edit("set", *cell, value=value))
    try:  # "everywhere" includes what the edits above add (a copied environment's keys)
        working = documents.apply(document, edits)
    except documents.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    deleted = list(dict.fromkeys(intent.deletes))
    for service, key in intent.delete_keys:
        deleted.extend(
            (env, service, key)
            for env in envs
            if not permissions.is_protected(env)
            and key in working.get(env, {}).get(service, {})
            and (env, service, key) not in deleted
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


@dataclass
class EditState:
    """What the editor and the review show: the grid page of the base version, why it can't be
    edited (``blocker``), warnings, version activity, and the base itself when editable."""

    page: reads.SecretPage
    blocker: str
    warnings: list[str]
    activity: VersionActivity | None
    base: Version | None

    @property
    def is_current(self) -> bool:
        return self.page.version_id == self.page.description.meta.current_version


def secret_edit_state(*, name: str, version_id: str | None = None) -> EditState:
    """Open ``name`` for editing at ``version_id`` (default: current).

    Costs ``DescribeSecret`` + ``GetSecretValue`` + ``ListSecretVersionIds`` (one per 100
    versions, for the version-quota warning). Raises :class:`~secrets_admin.aws.AwsError`.
    """
    page = reads.secret_open(name, version_id=version_id)
    blocker = edit_blocker(page)
    activity = None
    base = None
    if not blocker and page.classified is not None:
        activity = version_activity(aws.list_versions(name))
        base = Version(page.version_id, page.classified.document, page.classified.size_bytes)
    return EditState(page, blocker, edit_warnings(page, activity), activity, base)


def secret_preview_changes(
    *, name: str, base_version_id: str, intent: EditIntent
) -> tuple[EditState, Preview]:
    """The review step: open the base, expand the intent and describe the result (cells,
    structure, size, and in ``needs_approval`` the protected environments it edits: saving it
    then opens a change request, :func:`secret_submit_changes`). Nothing is written.

    Raises :class:`NotEditable` (with the reason), :class:`InvalidChange`,
    :class:`~secrets_admin.aws.AwsError`. An empty preview means "no changes".
    """
    state = secret_edit_state(name=name, version_id=base_version_id)
    if state.blocker or state.base is None:
        raise NotEditable(state.blocker or "This secret can't be edited here.")
    changeset = changeset_for(intent, state.base.document)
    result = preview(name=name, base=state.base, changeset=changeset)
    return state, dataclasses.replace(result, needs_approval=protected_environments(changeset))


# --------------------------------------------------------------------------------------------
# Saving


_CHANGE_ID = re.compile(r"[A-Za-z0-9-]{16,64}")


def new_change_id() -> str:
    """A fresh change id (made when the review page is rendered, carried by its confirm form)."""
    return uuid.uuid4().hex


def request_token(name: str, change_id: str, base_version_id: str) -> str:
    """The ``ClientRequestToken`` (and so the ``VersionId``) of one change applied on one base.

    Derived, not random: the same change on the same base (a double submit, a retry after a
    timeout) gives the same token, and AWS answers a repeated ``PutSecretValue`` with the same
    token and text with the existing version (facts file §1.3). A rebase changes the base and so
    the token. UUID-shaped (36 characters, within AWS's 32-64).
    """
    digest = hashlib.sha256(f"{name}\n{change_id}\n{base_version_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def _source_identity(context: audit.Context) -> str:
    user = context.user
    return user.get_username() if user is not None else ""


def _earlier_success(name: str, change_id: str) -> AuditEvent | None:
    return (
        AuditEvent.objects.filter(secret=name, outcome="succeeded", detail__change_id=change_id)
        .exclude(new_version="")
        .order_by("-seq")
        .first()
    )


def _single_environment(changeset: Sequence[Edit]) -> str:
    envs = {e.environment for e in changeset}
    return envs.pop() if len(envs) == 1 else ""


def secret_save_changes(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit] | EditIntent,
    context: audit.Context,
    change_id: str,
    max_rebases: int = MAX_REBASES,
) -> SaveResult:
    """Save ``changeset`` made on version ``base_version_id`` as one new version (CAS).

    ``changeset`` is a list of edits, or the editor's :class:`EditIntent` (expanded against the
    base with :func:`changeset_for`).

    Raises, with nothing written: :class:`NeedsApproval` (a protected environment),
    :class:`InvalidChange` (an edit that can't apply, a bad change id), :class:`NoChanges`,
    :class:`NotEditable` (binary or non-standard base), :class:`~secrets_admin.aws.SecretTooLarge`,
    :class:`~secrets_admin.audit.AuditUnavailable` (fail closed). After writes that did not land:
    :class:`Conflict`, :class:`SaveContended`, or an :class:`~secrets_admin.aws.AwsError`.
    A repeat of a change id that already landed returns its result with ``already_saved``.
    """
    if not isinstance(changeset, EditIntent):
        refuse_protected(changeset)
    base = read_version(name, base_version_id)
    if isinstance(changeset, EditIntent):
        changeset = changeset_for(changeset, base.document)
        refuse_protected(changeset)
    return _save(
        name=name,
        base=base,
        changeset=list(changeset),
        context=context,
        change_id=change_id,
        max_rebases=max_rebases,
        action=audit.AuditAction.SAVE,
        detail={"kind": "edit"},
    )


def _save(
    *,
    name: str,
    base: Version,
    changeset: list[Edit],
    context: audit.Context,
    change_id: str,
    max_rebases: int,
    action: str,
    detail: dict[str, Any],
    whole_environments: Sequence[str] = (),
    change_request: int | None = None,
) -> SaveResult:
    if not _CHANGE_ID.fullmatch(change_id):
        raise InvalidChange("The change id is missing or malformed. Open the editor again.")
    try:
        new_doc = documents.apply(base.document, changeset)
    except documents.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    new_text = documents.serialise(new_doc)
    if new_text == documents.serialise(base.document):
        raise NoChanges()
    aws.check_size(new_text, secret=name)  # before any write (moto does not enforce it)
    earlier = _earlier_success(name, change_id)
    if earlier is not None:
        return SaveResult(
            name=name,
            new_version_id=earlier.new_version,
            base_version_id=earlier.base_version,
            already_saved=True,
        )
    detail = {**detail, "change_id": change_id, "edits": len(changeset)}
    run = _SwapRun(name, base, changeset, new_doc, _source_identity(context), whole_environments)
    outcome: SaveResult | Conflict | SaveContended | aws.AwsError | None = None
    try:
        with audit.attempt(
            action,
            context=context,
            secret=name,
            environment=_single_environment(changeset),
            base_version=base.version_id,
            # The first try's version id (= its ClientRequestToken): audit_reconcile asks AWS
            # whether it holds AWSCURRENT; rebased tries are listed in detail.staged_versions.
            new_version=request_token(name, change_id, base.version_id),
            change_request=change_request,
            detail=dict(detail),  # a copy: the outcome's detail grows below
        ) as handle:
            detail["staged_versions"] = run.staged  # filled as the run goes
            try:
                outcome = run.execute(change_id, max_rebases)
            except aws.AwsError as exc:
                outcome = exc
            _record_outcome(handle, outcome, detail)
    except audit.AuditUnavailable:
        if isinstance(outcome, SaveResult) and not outcome.already_saved:
            raise SavedUnrecorded(outcome.new_version_id) from None
        raise
    if not isinstance(outcome, SaveResult):
        if outcome is None:  # narrowing for the type checker; cannot happen
            raise RuntimeError("unexpected: outcome is None (outcome is set here)")
        raise outcome
    if not outcome.already_saved:
        _after_write(name, outcome.new_version_id, documents.serialise(run.new_doc))
    return outcome


class _SwapRun:
    """Steps 3-6 of the write protocol for one save, rebasing at most ``max_rebases`` times.

    ``staged`` lists every version this run staged (the history tells them from versions written
    outside the portal). Holds values (documents): never log it.
    """

    def __init__(
        self,
        name: str,
        base: Version,
        changeset: list[Edit],
        new_doc: dict[str, Any],
        identity: str,
        whole_environments: Sequence[str],
    ) -> None:
        self.name = name
        self.base = base
        self.changeset = changeset
        self.new_doc = new_doc
        self.identity = identity
        self.whole_environments = whole_environments
        self.staged: list[str] = []

    def __repr__(self) -> str:
        return f"_SwapRun({self.name!r}, base={self.base.version_id!r})"

    def execute(self, change_id: str, max_rebases: int) -> SaveResult | Conflict | SaveContended:
        for rebased in range(max_rebases + 1):
            staged = self._stage(change_id)
            if self._swap(staged):
                landed = compare(self.name, self.base, self.new_doc)
                return SaveResult(
                    name=self.name,
                    new_version_id=staged,
                    base_version_id=self.base.version_id,
                    cells=landed.cells,
                    structure=landed.structure,
                    rebased=rebased,
                    size_bytes=landed.size_bytes,
                )
            current = read_version(self.name)
            clashes = documents.conflicting_cells(
                self.base.document,
                current.document,
                self.changeset,
                whole_environments=self.whole_environments,
            )
            if clashes:
                return self._conflict(clashes, current, staged)
            self.changeset = documents.rebase_changeset(current.document, self.changeset)
            self.base = current
            self.new_doc = documents.apply(current.document, self.changeset)
            if documents.serialise(self.new_doc) == documents.serialise(current.document):
                # Someone else already made exactly this change: nothing left to save.
                return SaveResult(
                    name=self.name,
                    new_version_id=current.version_id,
                    base_version_id=current.version_id,
                    rebased=rebased + 1,
                    already_saved=True,
                )
        return SaveContended()

    def _stage(self, change_id: str) -> str:
        text = documents.serialise(self.new_doc)
        staged = aws.stage_version(
            self.name,
            text=text,
            token=request_token(self.name, change_id, self.base.version_id),
            source_identity=self.identity,
        )
        self.staged.append(staged)
        return staged

    def _swap(self, staged: str) -> bool:
        """Promote ``staged``; ``False`` when someone else moved AWSCURRENT. The temporary label
        is dropped whatever happens (also when the swap raises)."""
        try:
            aws.promote(
                self.name,
                version_id=staged,
                base_version_id=self.base.version_id,
                source_identity=self.identity,
            )
            return True
        except aws.CurrentMoved:
            return False
        finally:
            aws.drop_staging_label(self.name, version_id=staged, source_identity=self.identity)

    def _conflict(self, clashes: list[Cell], current: Version, staged: str) -> Conflict:
        return Conflict(
            name=self.name,
            cells=[
                ConflictCell(
                    *cell,
                    base=_state(self.base.document, cell),
                    theirs=_state(current.document, cell),
                    yours=_state(self.new_doc, cell),
                )
                for cell in clashes
            ],
            base_version_id=self.base.version_id,
            current_version_id=current.version_id,
            yours_version_id=staged,
        )


def _record_outcome(
    handle: audit.Attempt,
    outcome: SaveResult | Conflict | SaveContended | aws.AwsError,
    detail: dict[str, Any],
) -> None:
    """The outcome event of a save: succeeded (with per-cell fingerprints), conflicted (with the
    conflicting cells), or failed (with the error code)."""
    if isinstance(outcome, SaveResult):
        if outcome.already_saved:
            handle.succeeded(
                new_version="",
                base_version=outcome.base_version_id,
                detail={**detail, "already_in_place": True},
            )
            return
        counts = Preview("", "", outcome.cells, outcome.structure, 0, 0)
        handle.succeeded(
            new_version=outcome.new_version_id,
            base_version=outcome.base_version_id,
            detail={**detail, **_result_detail(counts, outcome.rebased, outcome.size_bytes)},
        )
    elif isinstance(outcome, Conflict):
        handle.conflicted(
            base_version=outcome.base_version_id,
            detail={
                **detail,
                "current_version": outcome.current_version_id,
                "conflicts": [
                    {"environment": c.environment, "service": c.service, "key": c.key}
                    for c in outcome.cells
                ],
            },
        )
    else:
        handle.failed(error_code=outcome.code or type(outcome).__name__, detail=detail)


def _result_detail(landed: Preview, rebased: int, size: int) -> dict[str, Any]:
    return {
        "cells": [c.as_detail() for c in landed.cells],
        "structure": [
            {"status": s.status, "environment": s.environment, "service": s.service}
            for s in landed.structure
        ],
        "counts": landed.counts,
        "environments": landed.environments,
        "rebased": rebased,
        "size_bytes": size,
    }


def _after_write(name: str, version_id: str, text: str) -> None:
    """Drop the cached listing and remember the new structure (names only)."""
    listing.invalidate()
    try:
        listing.remember(name, version_id, documents.classify(text))
    except DatabaseError:  # the save landed; a stale summary only shows "not read yet"
        log.warning("could not record the summary of %s after a save", name)


# --------------------------------------------------------------------------------------------
# Restoring one environment


def restore_changeset(*, name: str, environment: str, version_id: str, base: Version) -> list[Edit]:
    """The changeset that makes ``environment`` of ``base`` as it was in ``version_id``.

    Reads ``version_id`` (one ``GetSecretValue``). Other environments are untouched (DESIGN.md:
    never move ``AWSCURRENT`` wholesale to an old version). Raises :class:`NotEditable` when the
    old version breaks the standard, :class:`~secrets_admin.aws.AwsError`.
    """
    old = read_version(name, version_id)
    return documents.restore_changeset(base.document, old.document, environment)


def secret_preview_restore(
    *, name: str, environment: str, version_id: str
) -> tuple[EditState, Preview]:
    """The review of "restore ``environment`` to version ``version_id``" on the current version.

    A protected environment is previewed like any other; saving it opens a change request.
    Raises :class:`NotEditable`, :class:`~secrets_admin.aws.AwsError`.
    """
    state = secret_edit_state(name=name)
    if state.blocker or state.base is None:
        raise NotEditable(state.blocker or "This secret can't be edited here.")
    changeset = restore_changeset(
        name=name, environment=environment, version_id=version_id, base=state.base
    )
    return state, preview(name=name, base=state.base, changeset=changeset)


def secret_restore_environment(
    *,
    name: str,
    environment: str,
    version_id: str,
    base_version_id: str,
    context: audit.Context,
    change_id: str,
    max_rebases: int = MAX_REBASES,
) -> SaveResult | ChangeRequest:
    """Restore ``environment`` to its content in ``version_id``, as a new version on top of
    ``base_version_id``, through the same compare-and-swap path as an edit. A protected
    environment is restored through a change request instead (invariant 4).

    Conflicts are judged on the whole environment: if anyone changed ``environment`` since the base,
    the restore is not rebased over it (:class:`Conflict`). Raises as
    :func:`secret_save_changes` and :func:`change_request_propose`.
    """
    base = read_version(name, base_version_id)
    changeset = restore_changeset(
        name=name, environment=environment, version_id=version_id, base=base
    )
    if permissions.is_protected(environment):
        return change_request_propose(
            name=name,
            base_version_id=base_version_id,
            changeset=changeset,
            context=context,
            change_id=change_id,
            comment=f"Restore {environment} to its content in version {version_id}.",
        )
    return _save(
        name=name,
        base=base,
        changeset=changeset,
        context=context,
        change_id=change_id,
        max_rebases=max_rebases,
        action=audit.AuditAction.ENVIRONMENT_RESTORE,
        detail={"kind": "restore_environment", "environment": environment, "from": version_id},
        whole_environments=[environment],
    )


# --------------------------------------------------------------------------------------------
# Editor facts


@dataclass(frozen=True)
class VersionActivity:
    """How many versions the secret has, and how many were created in the last 24 hours."""

    total: int
    last_24h: int

    @property
    def warning(self) -> str:
        if self.last_24h < VERSION_WARNING_24H:
            return ""
        return (
            f"{self.last_24h} versions of this secret were created in the last 24 hours. AWS "
            f"keeps about {VERSION_QUOTA} versions per secret and deletes unlabelled ones only "
            "once they are 24 hours old, so after a few more saves today Secrets Manager will "
            "refuse new versions (LimitExceededException). Batch your edits into one save."
        )


def version_activity(
    versions: Sequence[dict[str, Any]], *, now: datetime | None = None
) -> VersionActivity:
    """Count versions (as ``aws.list_versions`` returns them) created in the last 24 hours."""
    since = (now or datetime.now(UTC)) - timedelta(hours=24)
    recent = sum(1 for v in versions if v.get("CreatedDate") and v["CreatedDate"] >= since)
    return VersionActivity(total=len(versions), last_24h=recent)


def edit_blocker(page: reads.SecretPage) -> str:
    """Why the secret can't be edited in the grid, or ``""`` (replica, scheduled for deletion,
    managed by another service, no value yet, binary or non-standard)."""
    meta = page.description.meta
    if page.read_only_reason:
        return page.read_only_reason
    if meta.owning_service:
        return (
            f"This secret is managed by {meta.owning_service}; change it there, not in the portal."
        )
    if not page.description.has_value:
        return (
            "This secret has no value yet, and the portal edits only secrets that hold a unified "
            "JSON document. Give it a first value outside the portal (put-secret-value), or "
            "delete it and have an admin create it here."
        )
    if page.problem:
        return page.problem
    return ""


def edit_warnings(page: reads.SecretPage, activity: VersionActivity | None) -> list[str]:
    """Warnings shown on the editor and the review: rotation, version quota."""
    out = []
    if page.description.meta.rotation_enabled:
        out.append(
            "Rotation is enabled: a rotation function also writes this secret, and may replace "
            "what you save here on its next run. The portal never touches AWSPENDING."
        )
    if activity is not None and activity.warning:
        out.append(activity.warning)
    return out


# --------------------------------------------------------------------------------------------
# Creating and undeleting secrets


def secret_create(
    *,
    repo: str,
    context: audit.Context,
    description: str = "",
    environments: Sequence[str] = documents.STANDARD_ENVIRONMENTS,
    services: dict[str, list[str]] | None = None,
    tags: dict[str, str] | None = None,
    kms_key_id: str = "",
    document: dict[str, Any] | None = None,
) -> aws.CreatedSecret:
    """Create ``<repo><suffix>`` with its first version (admins; DESIGN.md "Roles").

    The first value holds ``environments`` each with the ``services`` template (service -> key
    names, values empty strings), or, when given, the initial ``document`` (a conforming unified
    document, e.g. the migration wizard's; ``environments`` and ``services`` are then ignored).
    Raises :class:`InvalidChange` (name, environment, service or
    key names), :class:`SecretExists`, :class:`SecretPendingDeletion` (restore it instead),
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    name = f"{repo}{settings.PORTAL_SECRET_SUFFIX}"
    problem = documents.secret_name_problem(name, settings.PORTAL_SECRET_SUFFIX)
    if problem:
        raise InvalidChange(f"{name}: {problem}.")
    if document is not None:
        problems = list(documents.structure_problems(document))
        if problems or not document:
            raise InvalidChange(
                "The first value does not follow the standard: "
                + "; ".join(problems or ["it has no environment"])
                + "."
            )
        environments, services = list(document), {}
    if not environments:
        raise InvalidChange("Give at least one environment.")
    edits: list[Edit] = []
    for env in environments:
        edits.append(Edit("add_environment", env))
        for service, keys in (services or {}).items():
            edits.append(Edit("add_service", env, service))
            edits.extend(Edit("set", env, service, key, "") for key in keys)
    try:
        first = documents.apply({}, edits) if document is None else document
    except documents.ChangesetError as exc:
        raise InvalidChange(f"The template can't be used: {exc}.") from None
    text = documents.serialise(first)
    aws.check_size(text, secret=name)
    created: aws.CreatedSecret | None = None
    refusal: ChangeRefused | None = None
    detail = {
        "environments": list(environments),
        "services": list(services or {}),
        "tags": sorted(tags or {}),
        "kms_key": bool(kms_key_id),
    }
    with audit.attempt(
        audit.AuditAction.SECRET_CREATE, context=context, secret=name, detail=detail
    ) as handle:
        try:
            created = aws.create(
                name,
                text=text,
                description=description,
                tags=tags,
                kms_key_id=kms_key_id,
                source_identity=_source_identity(context),
            )
        except aws.AwsError as exc:
            refusal = _existing_secret_refusal(name, exc)
            if refusal is None:
                raise
            handle.failed(error_code=refusal.code, detail=detail)
        else:
            handle.succeeded(new_version=created.version_id, detail=detail)
    if refusal is not None:
        raise refusal
    if created is None:  # narrowing for the type checker; cannot happen
        raise RuntimeError("unexpected: created is None (created is set here)")
    _after_write(name, created.version_id, text)
    return created


def _existing_secret_refusal(name: str, exc: aws.AwsError) -> ChangeRefused | None:
    """Tell "exists" from "pending deletion" (AWS answers the latter with InvalidRequest, moto
    with ResourceExists): one ``DescribeSecret`` decides."""
    if exc.code not in ("ResourceExistsException", "InvalidRequestException"):
        return None
    try:
        description = aws.describe(name)
    except aws.AwsError:
        return None
    if description.meta.scheduled_for_deletion:
        return SecretPendingDeletion(name)
    return SecretExists(f"A secret named {name} already exists. Open it instead.")


def secret_undelete(*, name: str, context: audit.Context) -> None:
    """Cancel the scheduled deletion of ``name`` (``RestoreSecret``; admins), audited first.

    Raises :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    with audit.attempt(audit.AuditAction.SECRET_UNDELETE, context=context, secret=name) as handle:
        aws.restore_deleted(name, source_identity=_source_identity(context))
        handle.succeeded()
    listing.invalidate()


# --------------------------------------------------------------------------------------------
# Promoting rows from one environment to another (issue 7, part 3)

#: A promoted row: ``(service, key)``; ``key == ""`` means the whole service.
PromoteRow = tuple[str, str]


def promote_changeset(
    document: dict[str, Any],
    *,
    source: str,
    target: str,
    rows: Sequence[PromoteRow],
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
        raise InvalidChange("Choose two different environments to promote between.")
    if not rows:
        raise InvalidChange("Choose at least one row (or a whole service) to promote.")
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


def secret_preview_promote(
    *,
    name: str,
    base_version_id: str,
    source: str,
    target: str,
    rows: Sequence[PromoteRow],
    with_values: bool,
) -> tuple[EditState, Preview]:
    """The review of a promotion on version ``base_version_id`` (the diff page's version).

    Nothing is written; a protected ``target`` is not refused here (the review says that saving
    needs approval). Raises :class:`NotEditable`, :class:`InvalidChange`,
    :class:`~secrets_admin.aws.AwsError`.
    """
    state = secret_edit_state(name=name, version_id=base_version_id)
    if state.blocker or state.base is None:
        raise NotEditable(state.blocker or "This secret can't be edited here.")
    changeset = promote_changeset(
        state.base.document, source=source, target=target, rows=rows, with_values=with_values
    )
    return state, preview(name=name, base=state.base, changeset=changeset)


def environment_promote(
    *,
    name: str,
    base_version_id: str,
    source: str,
    target: str,
    rows: Sequence[PromoteRow],
    with_values: bool,
    context: audit.Context,
    change_id: str,
) -> SaveResult | ChangeRequest:
    """Copy ``rows`` from ``source`` to ``target`` as one changeset on ``base_version_id``,
    saved through the normal compare-and-swap path (:func:`_submit`); a promotion into a
    protected environment opens a change request instead (invariant 4).

    Values are read here from the base version (one ``GetSecretValue``), never posted by the
    browser. Raises as :func:`secret_save_changes` and :func:`change_request_propose`.
    """
    base = read_version(name, base_version_id)
    changeset = promote_changeset(
        base.document, source=source, target=target, rows=rows, with_values=with_values
    )
    if not changeset:
        raise NoChanges()
    return _submit(
        name=name,
        base_version_id=base_version_id,
        changeset=changeset,
        context=context,
        change_id=change_id,
    )


def _submit(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit],
    context: audit.Context,
    change_id: str,
) -> SaveResult | ChangeRequest:
    """The one call through which promotions and migrations save: :func:`secret_submit_changes`
    (a direct save, or a change request when a protected environment is touched)."""
    return secret_submit_changes(
        name=name,
        base_version_id=base_version_id,
        changeset=changeset,
        context=context,
        change_id=change_id,
    )


# --------------------------------------------------------------------------------------------
# The migration wizard (issue 7, part 5): legacy secrets and .env files into a unified secret


@dataclass(frozen=True)
class MigrationCandidate:
    """A secret the wizard offers, with the repo, environment and service its name suggests."""

    name: str
    repo: str
    environment: str
    service: str
    legacy: bool  # the name reads as <repo>-<service>-<env>, <repo>-<env> or <repo>-<service>


def migration_candidates() -> list[MigrationCandidate]:
    """Every live secret that is not a unified one, legacy-looking names first, each with the
    mapping its name suggests (``compliance.legacy_match``). ceil(N/100) ``ListSecrets``; no
    value is read. Raises :class:`~secrets_admin.aws.AwsError`."""
    policy, _ = lint.policy()
    metas = [m for m in aws.iter_secrets() if not m.scheduled_for_deletion and not m.owning_service]
    repos = {m.name[: -len(policy.suffix)] for m in metas if m.name.endswith(policy.suffix)}
    envs = [*policy.required_environments, *policy.known_environments]
    others = [m.name for m in metas if not m.name.endswith(policy.suffix)]
    # A repo without a unified secret yet: the shortest stem (name less its environment) that
    # the other stems extend ("shop" from shop-sandbox, for shop-stripe-dev and shop-databricks).
    stems = set()
    for name in others:
        match = compliance.legacy_match(name, repos, envs)
        if match is not None and not match.repo:
            stems.add(name[: -len(match.environment) - 1])
    repos |= {s for s in stems if not any(s.startswith(o + "-") for o in stems if o != s)}
    out = []
    for name in others:
        match = compliance.legacy_match(name, repos, envs)
        if match is None:
            out.append(MigrationCandidate(name, "", "", "", False))
        else:
            out.append(MigrationCandidate(name, match.repo, match.environment, match.service, True))
    return sorted(out, key=lambda c: (not c.legacy, c.name))


@dataclass(frozen=True)
class MigrationSource:
    """One chosen source and its mapping: a legacy secret (``name``) or the ``.env`` file
    (``name == ""``). ``service == ""``: services come from the source itself."""

    name: str
    environment: str
    service: str

    @property
    def label(self) -> str:
        return self.name or ".env file"


def _read_legacy(source: MigrationSource) -> migration.Read:
    try:
        value = aws.read_current(source.name)
    except aws.AwsError as exc:
        return migration.Read(source.label, problems=[exc.message])
    if value.text is None:
        return migration.Read(
            source.label, problems=["The secret holds binary data: copy it by hand."]
        )
    return migration.read_json_source(
        source.label, value.text, environment=source.environment, service=source.service
    )


def _mapping_problems(source: MigrationSource) -> list[str]:
    problems = []
    for kind, name in (("environment", source.environment), ("service", source.service)):
        if kind == "service" and not name:
            continue
        problem = documents.name_problem(name)
        if problem:
            problems.append(f"The {kind} name can't be used: {problem}.")
    return problems


def migration_plan(
    *,
    repo: str,
    sources: Sequence[MigrationSource],
    env_text: str = "",
    overwrite: bool = False,
) -> migration.Plan:
    """Read the unified secret ``<repo><suffix>`` (absent: it will be created) and every source
    (one ``GetSecretValue`` each; the ``.env`` text comes from the person), and plan the
    migration. Nothing is written. Problems of one source (unreadable, binary, empty, a bad
    mapping) are in the plan, never raised. Raises :class:`InvalidChange` (bad repo name, no
    source), :class:`NotEditable` (the unified secret breaks the standard),
    :class:`~secrets_admin.aws.AwsError` (the unified secret can't be read).
    """
    name = f"{repo}{settings.PORTAL_SECRET_SUFFIX}"
    problem = documents.secret_name_problem(name, settings.PORTAL_SECRET_SUFFIX)
    if problem:
        raise InvalidChange(f"{name}: {problem}.")
    if not sources:
        raise InvalidChange("Choose at least one legacy secret, or give a .env file.")
    try:
        base: Version | None = read_version(name)
    except aws.SecretNotFound:
        base = None
    reads_: list[migration.Read] = []
    for source in sources:
        bad = _mapping_problems(source)
        if bad:
            reads_.append(migration.Read(source.label, problems=bad))
        elif source.name:
            reads_.append(_read_legacy(source))
        else:
            reads_.append(
                migration.read_env_source(
                    source.label,
                    migration.parse_env_file(env_text),
                    environment=source.environment,
                    service=source.service,
                )
            )
    return migration.plan(
        target=name,
        existing=base.document if base else None,
        base_version_id=base.version_id if base else "",
        reads=reads_,
        overwrite=overwrite,
        fingerprint=reads.fingerprint,
        required_environments=settings.PORTAL_REQUIRED_ENVIRONMENTS,
    )


@dataclass(frozen=True)
class MigrationResult:
    """The landed migration: the unified secret, its new version, what was written, and the
    legacy secrets it came from (offered for scheduled deletion afterwards)."""

    name: str
    version_id: str
    created: bool
    written: int
    legacy: list[str]
    change_request_id: int | None = None  # set when a protected environment needs approval


def secret_migrate(
    *,
    repo: str,
    sources: Sequence[MigrationSource],
    env_text: str = "",
    overwrite: bool = False,
    digest: str,
    context: audit.Context,
    change_id: str,
) -> MigrationResult:
    """Re-plan (legacy values are re-read from AWS here, never carried by the browser), check
    the plan is the one reviewed (``digest``), then create the unified secret
    (:func:`secret_create` with the document) or save the changeset on it (:func:`_submit`).
    One ``secret_migrate`` audit event names the sources (names and counts only).

    The legacy secrets are never deleted here (:func:`legacy_secret_schedule_deletion`).
    Raises :class:`InvalidChange` (the sources changed since the review), :class:`NoChanges`,
    and whatever :func:`migration_plan`, :func:`secret_create` and :func:`_submit` raise
    (:class:`NeedsApproval` for a protected environment of an existing secret).
    """
    plan = migration_plan(repo=repo, sources=sources, env_text=env_text, overwrite=overwrite)
    if plan.digest != digest:
        raise InvalidChange(
            "The sources or the unified secret changed since the preview, so nothing was "
            "written. Review the migration again."
        )
    if not plan.writes and plan.exists:
        raise NoChanges()
    change_request_id: int | None = None
    if plan.exists:
        result = _submit(
            name=plan.target,
            base_version_id=plan.base_version_id,
            changeset=plan.changeset,
            context=context,
            change_id=change_id,
        )
        if isinstance(result, ChangeRequest):
            version_id, change_request_id = "", result.pk
        else:
            version_id = result.new_version_id
    else:
        document = documents.apply({}, plan.changeset)
        created = secret_create(
            repo=repo,
            context=context,
            description="Unified secret created by the portal's migration wizard",
            document=document,
        )
        version_id = created.version_id
    legacy = [s.name for s in sources if s.name]
    audit.record(
        audit.AuditAction.SECRET_MIGRATE,
        context=context,
        secret=plan.target,
        new_version=version_id,
        change_request=change_request_id,
        detail={
            "sources": [s.label for s in sources],
            "created": not plan.exists,
            "counts": plan.counts,
            "cells": [
                {
                    "environment": c.environment,
                    "service": c.service,
                    "key": c.key,
                    "source": c.source,
                    "status": c.status,
                    "after": c.fingerprint,
                }
                for c in plan.cells
                if c.written
            ],
        },
    )
    return MigrationResult(
        plan.target, version_id, not plan.exists, plan.writes, legacy, change_request_id
    )


def legacy_secret_schedule_deletion(
    *, name: str, recovery_days: int, context: audit.Context
) -> datetime:
    """Schedule the deletion of a legacy secret with a recovery window (7-30 days;
    ``DeleteSecret RecoveryWindowInDays``), audited first (admins; the standard's migration
    checklist's last step). Unified secrets are refused: the portal deletes only what was
    migrated away. Returns the deletion date.

    Raises :class:`InvalidChange` (a unified secret, a window outside 7-30 days),
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    if name.endswith(settings.PORTAL_SECRET_SUFFIX):
        raise InvalidChange(
            f"{name} is a unified secret; the portal schedules deletion of legacy secrets only."
        )
    low, high = aws.RECOVERY_WINDOW_DAYS
    if not low <= recovery_days <= high:
        raise InvalidChange(f"Choose a recovery window of {low} to {high} days.")
    detail = {"recovery_days": recovery_days}
    with audit.attempt(
        audit.AuditAction.SECRET_DELETE_SCHEDULE, context=context, secret=name, detail=detail
    ) as handle:
        when = aws.schedule_deletion(
            name, recovery_days=recovery_days, source_identity=_source_identity(context)
        )
        handle.succeeded(detail={**detail, "deletion_date": when.isoformat()})
    listing.invalidate()
    return when


# Change requests (issue 6): a second person for protected environments (invariant 4)
#
# Statuses: open -> approved -> applied | conflicted; open -> rejected | cancelled | expired;
# open -> bypassed (break-glass; applied, or conflicted). Every transition out of "open" is a
# conditional change of the request row inside a transaction (``select_for_update``), so two
# approvers approving at once move it once and it is applied once; the compare-and-swap on
# AWSCURRENT guards the write itself as well. The ``CR-<id>`` label is removed whenever a
# request leaves "open"/"approved", so no label is left behind.

Status = ChangeRequest.Status


class ChangeRequestRefused(ChangeRefused):
    """This person may not do that to this request now (``message`` says why)."""

    code = "ChangeRequestRefused"


class SelfApproval(ChangeRequestRefused):
    code = "SelfApproval"

    def __init__(self) -> None:
        super().__init__(
            "You proposed this change request, so you can't approve or reject it: a second "
            "person has to (whatever your role). Cancel it instead if it is no longer wanted."
        )


class LabelLimit(ChangeRefused):
    code = "LabelLimit"


class ChangeRequestNotFound(Exception):
    message = "There is no such change request."


def change_request_label(request_id: int) -> str:
    """The staging label of a request's proposed version: ``CR-<id>``."""
    return f"CR-{request_id}"


def _user_fields(user: Any) -> dict[str, str]:
    return {
        "author_username": user.get_username(),
        "author_email": getattr(user, "email", "") or "",
        "author_name": user.get_full_name() if hasattr(user, "get_full_name") else "",
    }


def _structure_of(changeset: Sequence[Edit]) -> list[dict[str, str]]:
    """A changeset without its values: ops and cell names only (what the database may hold)."""
    return [
        {"op": e.op, "environment": e.environment, "service": e.service, "key": e.key}
        for e in changeset
    ]


def _changeset_from(structure: Sequence[dict[str, str]], staged: dict[str, Any]) -> list[Edit]:
    """Rebuild a request's changeset: its structure, with each ``set`` value read from the staged
    (proposed) document. A value a later edit of the same changeset removed is not needed."""
    edits = []
    for item in structure:
        cell = (item["environment"], item["service"], item["key"])
        value = documents.lookup(staged, cell)[1] if item["op"] == "set" else None
        edits.append(Edit(item["op"], *cell, value=value))  # type: ignore[arg-type]
    return edits


def _label_room(name: str, description: aws.SecretDescription) -> None:
    """Refuse when one more ``CR-<id>`` label would pass AWS's 20 labels per secret (moto does not
    enforce the quota). One label stays free for the saves' temporary label."""
    labels = aws.labels_in_use(description)
    needed = 1 + (0 if aws.STAGING_LABEL in labels else 1)
    if len(labels) + needed <= aws.LABEL_QUOTA:
        return
    requests = sum(1 for label in labels if label.startswith("CR-"))
    raise LabelLimit(
        f"{name} already carries {len(labels)} of the {aws.LABEL_QUOTA} staging labels AWS allows "
        f"per secret ({requests} of them for open change requests, and one is kept free for "
        "ordinary saves), so a new change request can't be staged. Approve, reject or cancel an "
        "open change request on this secret, then propose again. Nothing was proposed."
    )


def _counts(cells: Sequence[dict[str, str]]) -> dict[str, int]:
    out = {"added": 0, "changed": 0, "removed": 0}
    for c in cells:
        out["changed" if c["status"] == "type_changed" else c["status"]] += 1
    return out


def _propose(
    *,
    name: str,
    base: Version,
    changeset: list[Edit],
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> ChangeRequest:
    user = context.user
    if user is None or not permissions.can(user, permissions.Action.PROPOSE):
        raise ChangeRequestRefused("Only engineers and above may propose change requests.")
    if not _CHANGE_ID.fullmatch(change_id):
        raise InvalidChange("The change id is missing or malformed. Open the editor again.")
    earlier = ChangeRequest.objects.filter(secret=name, change_id=change_id).first()
    if earlier is not None:  # a double submit: the request exists already
        return earlier
    try:
        new_doc = documents.apply(base.document, changeset)
    except documents.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    new_text = documents.serialise(new_doc)
    if new_text == documents.serialise(base.document):
        raise NoChanges()
    aws.check_size(new_text, secret=name)
    _label_room(name, aws.describe(name))
    landed = compare(name, base, new_doc)
    try:
        cr = ChangeRequest.objects.create(
            secret=name,
            environments=sorted({e.environment for e in changeset}),
            base_version=base.version_id,
            change_id=change_id,
            cells=[c.as_detail() for c in landed.cells],
            structure=_structure_of(changeset),
            author=user,
            required_approvals=settings.PORTAL_REQUIRED_APPROVALS,
            expires_at=timezone.now() + timedelta(days=settings.PORTAL_CHANGE_REQUEST_DAYS),
            comment=comment[:2000],
            **_user_fields(user),
        )
    except IntegrityError:  # the same change submitted twice at once
        return ChangeRequest.objects.get(secret=name, change_id=change_id)
    cr.label = change_request_label(cr.pk)
    token = request_token(name, cr.label, base.version_id)
    detail = {
        "kind": "change_request",
        "label": cr.label,
        "environments": cr.environments,
        "cells": cr.cells,
        "counts": _counts(cr.cells),
        "structure": [
            {"status": c.status, "environment": c.environment, "service": c.service}
            for c in landed.structure
        ],
        "size_bytes": landed.size_bytes,
    }
    staged = ""
    try:
        with audit.attempt(
            audit.AuditAction.CHANGE_REQUEST_PROPOSE,
            context=context,
            secret=name,
            environment=_single_environment(changeset),
            base_version=base.version_id,
            new_version=token,
            change_request=cr.pk,
            detail=detail,
        ) as handle:
            staged = aws.stage_version(
                name,
                text=new_text,
                token=token,
                source_identity=_source_identity(context),
                label=cr.label,
            )
            handle.succeeded(new_version=staged, detail=detail)
    except BaseException:
        if staged:
            aws.drop_staging_label(name, version_id=staged, label=cr.label)
        cr.delete()  # metadata of a request that never opened (the audit log keeps the attempt)
        raise
    cr.staged_version = staged
    cr.save(update_fields=["label", "staged_version", "updated"])
    notifications.request_opened(cr)
    return cr


def change_request_propose(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit] | EditIntent,
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> ChangeRequest:
    """Open a change request: ``changeset`` applied to version ``base_version_id`` is staged in
    Secrets Manager as a version labelled ``CR-<id>`` (``ClientRequestToken`` derived from the
    label and the base), and the database gets its metadata only (:class:`ChangeRequest`).

    Costs ``GetSecretValue`` (base) + ``DescribeSecret`` (label count) + ``PutSecretValue``.
    The approvers are emailed. A repeat of ``change_id`` returns the existing request.
    Raises, with nothing staged: :class:`ChangeRequestRefused` (role), :class:`InvalidChange`,
    :class:`NoChanges`, :class:`NotEditable`, :class:`LabelLimit` (AWS's 20 labels per
    secret), :class:`~secrets_admin.aws.SecretTooLarge`, :class:`~secrets_admin.aws.AwsError`,
    :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    base = read_version(name, base_version_id)
    if isinstance(changeset, EditIntent):
        changeset = changeset_for(changeset, base.document)
    return _propose(
        name=name,
        base=base,
        changeset=list(changeset),
        context=context,
        change_id=change_id,
        comment=comment,
    )


def secret_submit_changes(
    *,
    name: str,
    base_version_id: str,
    changeset: Sequence[Edit] | EditIntent,
    context: audit.Context,
    change_id: str,
    comment: str = "",
) -> SaveResult | ChangeRequest:
    """Save ``changeset`` directly when it edits no protected environment; otherwise open a
    change request for it (invariant 4). The one entry point for edits (editor, promotions).

    A mixed changeset (say ``dev`` and ``main``) becomes ONE change request as a whole: its
    edits were made together and land together (or not at all), so ``dev`` is not saved ahead
    of the approval. Raises as :func:`secret_save_changes` / :func:`change_request_propose`.
    """
    base = read_version(name, base_version_id)
    edits = (
        changeset_for(changeset, base.document)
        if isinstance(changeset, EditIntent)
        else list(changeset)
    )
    if protected_environments(edits):
        return _propose(
            name=name,
            base=base,
            changeset=edits,
            context=context,
            change_id=change_id,
            comment=comment,
        )
    return _save(
        name=name,
        base=base,
        changeset=edits,
        context=context,
        change_id=change_id,
        max_rebases=MAX_REBASES,
        action=audit.AuditAction.SAVE,
        detail={"kind": "edit"},
    )


def change_request_get(request_id: int) -> ChangeRequest:
    """The request, or :class:`ChangeRequestNotFound`."""
    try:
        return ChangeRequest.objects.get(pk=request_id)
    except ChangeRequest.DoesNotExist:
        raise ChangeRequestNotFound() from None


def _refuse_unless_open(cr: ChangeRequest) -> None:
    if cr.status != Status.OPEN:
        raise ChangeRequestRefused(
            f"Change request #{cr.pk} is {cr.status}, no longer open: nothing was changed."
        )
    if cr.expires_at <= timezone.now():
        raise ChangeRequestRefused(
            f"Change request #{cr.pk} expired on {cr.expires_at:%Y-%m-%d %H:%M} UTC: nothing was "
            "changed. Propose the change again."
        )


def _is_author(cr: ChangeRequest, user: Any) -> bool:
    return bool(cr.author_id == user.pk or cr.author_username == user.get_username())


def _drop_label(cr: ChangeRequest, context: audit.Context | None = None) -> None:
    if cr.staged_version and cr.label:
        aws.drop_staging_label(
            cr.secret,
            version_id=cr.staged_version,
            label=cr.label,
            source_identity=_source_identity(context) if context else "",
        )


def _vote(*, request_id: int, context: audit.Context, decision: str, comment: str) -> ChangeRequest:
    user = context.user
    if user is None or not permissions.can(user, permissions.Action.APPROVE):
        raise ChangeRequestRefused("Only approvers may approve or reject change requests.")
    cr = change_request_get(request_id)
    reject = decision == Approval.Decision.REJECT
    if reject and not comment.strip():
        raise ChangeRequestRefused("Say why you reject it: a comment is required.")
    action = (
        audit.AuditAction.CHANGE_REQUEST_REJECT
        if reject
        else audit.AuditAction.CHANGE_REQUEST_APPROVE
    )
    with audit.attempt(
        action,
        context=context,
        secret=cr.secret,
        change_request=cr.pk,
        base_version=cr.base_version,
        new_version=cr.staged_version,
    ) as handle:
        with transaction.atomic():
            cr = ChangeRequest.objects.select_for_update().get(pk=request_id)
            _refuse_unless_open(cr)
            if _is_author(cr, user):
                raise SelfApproval()
            if cr.approvals.filter(approver=user).exists():
                raise ChangeRequestRefused("You have voted on this change request already.")
            Approval.objects.create(
                request=cr,
                approver=user,
                approver_username=user.get_username(),
                decision=decision,
                comment=comment[:2000],
            )
            approvals = cr.approvals.filter(decision=Approval.Decision.APPROVE).exclude(
                approver_username=cr.author_username
            )
            if reject:
                cr.status = Status.REJECTED
            elif approvals.count() >= cr.required_approvals:
                cr.status = Status.APPROVED
            cr.save(update_fields=["status", "updated"])
        handle.succeeded(
            detail={
                "status": cr.status,
                "approvals": approvals.count(),
                "required": cr.required_approvals,
            }
        )
    by = user.get_username()
    if cr.status == Status.REJECTED:
        _drop_label(cr, context)
        notifications.author_told(cr, "rejected", by=by, comment=comment)
    elif cr.status == Status.APPROVED:
        notifications.author_told(cr, "approved", by=by, comment=comment)
        return _apply(cr, context)
    return cr


def change_request_approve(
    *, request_id: int, context: audit.Context, comment: str = ""
) -> ChangeRequest:
    """Record ``context.user``'s approval; when approvals are complete, apply the request.

    The author can never approve (admins included: :class:`SelfApproval`); one vote per
    approver; only approver and admin roles vote. Returns the request as it ends (``open``,
    ``applied`` or ``conflicted``). Raises :class:`ChangeRequestRefused`,
    :class:`ChangeRequestNotFound`, :class:`~secrets_admin.audit.AuditUnavailable`, and what
    :func:`change_request_apply` raises.
    """
    return _vote(
        request_id=request_id, context=context, decision=Approval.Decision.APPROVE, comment=comment
    )


def change_request_reject(
    *, request_id: int, context: audit.Context, comment: str
) -> ChangeRequest:
    """Reject the request (a comment is required): nothing is applied, its label is removed and
    the author told. Same refusals as :func:`change_request_approve`."""
    return _vote(
        request_id=request_id, context=context, decision=Approval.Decision.REJECT, comment=comment
    )


def change_request_cancel(*, request_id: int, context: audit.Context) -> ChangeRequest:
    """The author withdraws their open request; its label is removed. Only the author may
    (:class:`ChangeRequestRefused`)."""
    user = context.user
    cr = change_request_get(request_id)
    with audit.attempt(
        audit.AuditAction.CHANGE_REQUEST_CANCEL,
        context=context,
        secret=cr.secret,
        change_request=cr.pk,
        new_version=cr.staged_version,
    ) as handle:
        with transaction.atomic():
            cr = ChangeRequest.objects.select_for_update().get(pk=request_id)
            if user is None or not _is_author(cr, user):
                raise ChangeRequestRefused("Only the author of a change request may cancel it.")
            if cr.status != Status.OPEN:
                raise ChangeRequestRefused(f"Change request #{cr.pk} is {cr.status} already.")
            cr.status = Status.CANCELLED
            cr.save(update_fields=["status", "updated"])
        handle.succeeded()
    _drop_label(cr, context)
    return cr


def change_request_bypass(*, request_id: int, context: audit.Context, reason: str) -> ChangeRequest:
    """Break-glass: an admin named in ``PORTAL_BREAK_GLASS_USERS`` applies their OWN open request
    without approval, giving a reason. The request ends ``bypassed`` (or ``conflicted``); it is
    listed for approvers until one acknowledges it (:func:`change_request_acknowledge`).

    Raises :class:`ChangeRequestRefused` (not enabled for this person, no reason, someone
    else's request, not open) and what :func:`change_request_apply` raises.
    """
    user = context.user
    if not break_glass_allowed(user):
        raise ChangeRequestRefused("Break-glass is not enabled for you.")
    if not reason.strip():
        raise ChangeRequestRefused("Give the reason for applying without approval.")
    cr = change_request_get(request_id)
    with audit.attempt(
        audit.AuditAction.CHANGE_REQUEST_BYPASS,
        context=context,
        secret=cr.secret,
        change_request=cr.pk,
        new_version=cr.staged_version,
        detail={"break_glass": True},
    ) as handle:
        with transaction.atomic():
            cr = ChangeRequest.objects.select_for_update().get(pk=request_id)
            if not _is_author(cr, user):
                raise ChangeRequestRefused(
                    "Break-glass applies only your own request; others' requests are approved."
                )
            _refuse_unless_open(cr)
            cr.status = Status.BYPASSED
            cr.bypass_reason = reason[:2000]
            cr.save(update_fields=["status", "bypass_reason", "updated"])
        handle.succeeded(detail={"break_glass": True})
    return _apply(cr, context)


def break_glass_allowed(user: Any) -> bool:
    """Whether ``user`` is an admin named in ``PORTAL_BREAK_GLASS_USERS`` (off when empty)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.get_username() in settings.PORTAL_BREAK_GLASS_USERS
        and permissions.role_for(user) >= permissions.Role.ADMIN
    )


def change_request_acknowledge(*, request_id: int, context: audit.Context) -> ChangeRequest:
    """An approver (not the author) acknowledges a break-glass bypass, so it leaves the list of
    bypasses to review. Raises :class:`ChangeRequestRefused`."""
    user = context.user
    if user is None or not permissions.can(user, permissions.Action.APPROVE):
        raise ChangeRequestRefused("Only approvers may acknowledge a bypass.")
    cr = change_request_get(request_id)
    with audit.attempt(
        audit.AuditAction.CHANGE_REQUEST_ACKNOWLEDGE,
        context=context,
        secret=cr.secret,
        change_request=cr.pk,
    ) as handle:
        with transaction.atomic():
            cr = ChangeRequest.objects.select_for_update().get(pk=request_id)
            if not cr.bypass_reason or cr.bypass_acknowledged_at is not None:
                raise ChangeRequestRefused("There is no unacknowledged bypass on this request.")
            if _is_author(cr, user):
                raise SelfApproval()
            cr.bypass_acknowledged_by = user
            cr.bypass_acknowledged_at = timezone.now()
            cr.save(update_fields=["bypass_acknowledged_by", "bypass_acknowledged_at", "updated"])
        handle.succeeded()
    return cr


def change_request_apply(*, request_id: int, context: audit.Context) -> ChangeRequest:
    """Apply an approved request (normally called by the approval that completes it; again by
    an approver when a first try failed on an AWS error). See :func:`_apply`."""
    cr = change_request_get(request_id)
    if cr.status != Status.APPROVED or cr.applied_version:
        raise ChangeRequestRefused(f"Change request #{cr.pk} is {cr.status}: nothing to apply.")
    if context.user is None or not permissions.can(context.user, permissions.Action.APPROVE):
        raise ChangeRequestRefused("Only approvers may apply a change request.")
    return _apply(cr, context)


def _apply(cr: ChangeRequest, context: audit.Context) -> ChangeRequest:
    """The write protocol for a request (DESIGN.md): AWSCURRENT still on the base -> move it to
    the staged version (``aws.promote``); the base moved but none of the request's cells changed
    -> rebase onto current and save it through the normal path (:func:`_save`); any of its cells
    changed -> ``conflicted`` (approvals void), nothing applied, the author told.

    Costs ``DescribeSecret`` + ``UpdateSecretVersionStage`` x 2 (promote, drop ``CR-<id>``)
    when the base did not move. Raises :class:`~secrets_admin.aws.AwsError` and
    :class:`SaveContended` with the request left ``approved`` (apply again later).
    """
    final = Status.BYPASSED if cr.status == Status.BYPASSED else Status.APPLIED
    detail = {
        "kind": "change_request",
        "change_request": cr.pk,
        "author": cr.author_username,
        "approvers": list(
            cr.approvals.filter(decision=Approval.Decision.APPROVE).values_list(
                "approver_username", flat=True
            )
        ),
        "break_glass": final == Status.BYPASSED,
    }
    version = ""
    conflicts: list[Cell] = []
    if aws.current_of(aws.describe(cr.secret)) == cr.base_version:
        version = _promote(cr, context, detail)
    if not version:
        version, conflicts = _rebase_and_save(cr, context, detail)
    if conflicts:
        cr.status = Status.CONFLICTED
        cr.outcome_message = "changed since the proposal: " + ", ".join(
            " / ".join(c for c in cell if c) for cell in conflicts
        )
    else:
        cr.status = final
        cr.applied_version = version
    cr.save(update_fields=["status", "applied_version", "outcome_message", "updated"])
    _drop_label(cr, context)
    listing.invalidate()
    notifications.author_told(
        cr, "conflicted" if conflicts else "applied", by=_source_identity(context)
    )
    return cr


def _promote(cr: ChangeRequest, context: audit.Context, detail: dict[str, Any]) -> str:
    """Move AWSCURRENT from the base to the staged version; ``""`` when the base moved meanwhile."""
    full = {
        **detail,
        "mode": "promote",
        "cells": cr.cells,
        "counts": _counts(cr.cells),
        "environments": cr.environments,
    }
    with audit.attempt(
        audit.AuditAction.CHANGE_REQUEST_APPLY,
        context=context,
        secret=cr.secret,
        environment=cr.environments[0] if len(cr.environments) == 1 else "",
        base_version=cr.base_version,
        new_version=cr.staged_version,
        change_request=cr.pk,
        detail=full,
    ) as handle:
        try:
            aws.promote(
                cr.secret,
                version_id=cr.staged_version,
                base_version_id=cr.base_version,
                source_identity=_source_identity(context),
            )
        except aws.CurrentMoved as moved:
            handle.failed(error_code=moved.code, detail={**full, "then": "rebase"})
            return ""
        handle.succeeded(detail=full)
    return cr.staged_version


def _rebase_and_save(
    cr: ChangeRequest, context: audit.Context, detail: dict[str, Any]
) -> tuple[str, list[Cell]]:
    """The base moved: the applied version's id, or the conflicting cells (nothing written)."""
    base = read_version(cr.secret, cr.base_version)
    staged = read_version(cr.secret, cr.staged_version)
    current = read_version(cr.secret)
    changeset = _changeset_from(cr.structure, staged.document)
    clashes = documents.conflicting_cells(base.document, current.document, changeset)
    if clashes:
        audit.record(
            audit.AuditAction.CHANGE_REQUEST_APPLY,
            context=context,
            outcome=audit.Outcome.CONFLICTED,
            secret=cr.secret,
            base_version=cr.base_version,
            change_request=cr.pk,
            detail={
                **detail,
                "current_version": current.version_id,
                "conflicts": [{"environment": e, "service": s, "key": k} for e, s, k in clashes],
            },
        )
        return "", clashes
    try:
        result = _save(
            name=cr.secret,
            base=current,
            changeset=documents.rebase_changeset(current.document, changeset),
            context=context,
            change_id=f"change-request-{cr.pk}-rebase",
            max_rebases=MAX_REBASES,
            action=audit.AuditAction.CHANGE_REQUEST_APPLY,
            detail={**detail, "mode": "rebase", "rebased_from": cr.base_version},
            change_request=cr.pk,
        )
    except NoChanges:  # someone else already made exactly this change
        return current.version_id, []
    except Conflict as conflict:  # a save between our read and our swap touched its cells
        return "", [(c.environment, c.service, c.key) for c in conflict.cells]
    return result.new_version_id, []


def change_requests_expire(*, now: datetime | None = None) -> list[int]:
    """Mark open requests past ``expires_at`` as expired, record it, remove their labels and
    tell their authors. Returns the expired ids. Run by ``manage.py change_requests_expire``
    and lazily when requests are listed."""
    now = now or timezone.now()
    context = audit.Context.system("change_requests_expire")
    done = []
    for cr in ChangeRequest.objects.filter(status=Status.OPEN, expires_at__lte=now):
        claimed = ChangeRequest.objects.filter(pk=cr.pk, status=Status.OPEN).update(
            status=Status.EXPIRED, updated=now
        )
        if not claimed:
            continue  # decided meanwhile
        cr.status = Status.EXPIRED
        audit.record(
            audit.AuditAction.CHANGE_REQUEST_EXPIRE,
            context=context,
            secret=cr.secret,
            change_request=cr.pk,
            new_version=cr.staged_version,
        )
        _drop_label(cr)
        notifications.author_told(cr, "expired")
        done.append(cr.pk)
    return done


def change_requests_for(
    user: Any, *, mine: bool = False, waiting: bool = False, secret: str = "", status: str = ""
) -> QuerySet[ChangeRequest]:
    """Requests for the list page: ``mine`` (authored by ``user``), ``waiting`` (open, not
    theirs, not voted on by them; approvers only), ``secret``, ``status`` (``""``: any)."""
    qs = ChangeRequest.objects.all()
    if mine:
        qs = qs.filter(author_username=user.get_username())
    if waiting:
        qs = (
            qs.filter(status=Status.OPEN)
            .exclude(author_username=user.get_username())
            .exclude(approvals__approver=user)
        )
    if secret:
        qs = qs.filter(secret=secret)
    if status:
        qs = qs.filter(status=status)
    return qs


def bypasses_to_review() -> QuerySet[ChangeRequest]:
    """Break-glass bypasses no approver has acknowledged yet."""
    return ChangeRequest.objects.exclude(bypass_reason="").filter(bypass_acknowledged_at=None)


@dataclass
class ChangeRequestReview:
    """What an open request would change on the CURRENT version (not the base): per-cell deltas
    current -> proposed, and the cells that conflict when the base moved. No values."""

    current_version_id: str
    cells: list[CellDelta]
    conflicts: list[Cell]
    base_moved: bool


def change_request_review(cr: ChangeRequest) -> ChangeRequestReview:
    """Compare current with what applying ``cr`` would make of it (promote when the base did not
    move, else its changeset rebased on current). ``GetSecretValue`` x 2 (x 3 when the base
    moved). Raises :class:`NotEditable`, :class:`~secrets_admin.aws.AwsError`."""
    current = read_version(cr.secret)
    staged = read_version(cr.secret, cr.staged_version)
    if current.version_id == cr.base_version:
        return ChangeRequestReview(
            current.version_id, compare(cr.secret, current, staged.document).cells, [], False
        )
    base = read_version(cr.secret, cr.base_version)
    changeset = _changeset_from(cr.structure, staged.document)
    clashes = documents.conflicting_cells(base.document, current.document, changeset)
    if clashes:  # show the request's own cells only, not others' edits it would seem to undo
        touched = documents.touched_cells(base.document, changeset)
        cells = [
            c
            for c in compare(cr.secret, current, staged.document).cells
            if (c.environment, c.service, c.key) in touched
        ]
        return ChangeRequestReview(current.version_id, cells, clashes, True)
    after = documents.apply(
        current.document, documents.rebase_changeset(current.document, changeset)
    )
    return ChangeRequestReview(
        current.version_id, compare(cr.secret, current, after).cells, [], True
    )
