"""The write protocol every save goes through: read a version, the request token, the
compare-and-swap run, and :func:`save_changeset` (whose :class:`SaveResult` carries its counts).

The save follows the write protocol (README "How a save works"), steps 1-6:

1. read the base version by ``VersionId`` (the version the editor showed);
2. ``changesets.apply`` the changeset, serialise, refuse above 65,536 bytes (before any write);
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

import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import DatabaseError

from .. import after_response, audit, aws, changesets, diffs, documents, index, listing, permissions
from ..changesets import Edit
from ..errors import Conflict, InvalidChange, NoChanges, NotEditable, SaveContended, SavedUnrecorded
from ..models import AuditEvent

log = logging.getLogger(__name__)

#: Rebases after "someone else saved" before giving up (bounded).
MAX_REBASES = 3

#: A cell's position: ``(environment, service, key)``; ``key == ""`` names a service,
#: ``service == key == ""`` an environment. A position, never a value.
CellRef = tuple[str, str, str]


def _fingerprint(value: Any) -> str:
    # The key of reads.fingerprint; the read side imports this module, not the other way round.
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), value)


def cell_state(document: Any, cell: CellRef) -> documents.CellState:
    """:func:`~secrets_admin.documents.cell_state` fingerprinted with
    ``PORTAL_FINGERPRINT_KEY``: presence, JSON type and full fingerprint, never the value."""
    return documents.cell_state(document, cell, fingerprint=_fingerprint)


@dataclass(frozen=True)
class Preview:
    """What a changeset does to a base version: cells, structure, size. Never a value."""

    name: str
    base_version_id: str
    cells: list[diffs.CellDelta]
    structure: list[changesets.StructureChange]
    size_bytes: int
    base_size_bytes: int
    needs_approval: list[str] = field(default_factory=list)  # protected environments edited

    @property
    def over_by(self) -> int:
        return max(0, self.size_bytes - documents.MAX_SECRET_BYTES)

    @property
    def counts(self) -> dict[str, int]:
        return diffs.count_changes(c.status for c in self.cells)

    @property
    def environments(self) -> list[str]:
        return _environments(self.cells, self.structure)


@dataclass(frozen=True)
class SaveResult:
    """A landed save (or a repeat of one). ``already_saved``: this change id had landed before
    (nothing new written); ``rebased``: how many times it was moved onto a newer version."""

    name: str
    new_version_id: str
    base_version_id: str
    cells: list[diffs.CellDelta] = field(default_factory=list)
    structure: list[changesets.StructureChange] = field(default_factory=list)
    rebased: int = 0
    already_saved: bool = False
    size_bytes: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Cells ``added`` / ``changed`` / ``removed`` by this save (a type change counts as
        changed); all zero for a repeat (``already_saved``)."""
        return diffs.count_changes(c.status for c in self.cells)

    @property
    def environments(self) -> list[str]:
        return _environments(self.cells, self.structure)


def _environments(
    cells: Sequence[diffs.CellDelta], structure: Sequence[changesets.StructureChange]
) -> list[str]:
    envs = [c.environment for c in cells] + [s.environment for s in structure]
    return list(dict.fromkeys(envs))


@dataclass(frozen=True)
class ConflictCell:
    environment: str
    service: str
    key: str
    base: documents.CellState
    theirs: documents.CellState
    yours: documents.CellState


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

    Raises :class:`InvalidChange` when an edit can't apply (``changesets.ChangesetError``).
    """
    try:
        after = changesets.apply(base.document, changeset)
    except changesets.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    return compare(name, base, after)


def compare(
    name: str, base: Version, after: dict[str, Any], *, size_bytes: int | None = None
) -> Preview:
    """Per-cell and structural differences from ``base`` to the document ``after``. No AWS call.

    ``size_bytes`` is the size of ``after``'s text when the caller serialised it already
    (otherwise it is serialised here once to measure it)."""
    return Preview(
        name=name,
        base_version_id=base.version_id,
        cells=diffs.diff(base.document, after, fingerprint=_fingerprint),
        structure=changesets.structure_changes(base.document, after),
        size_bytes=(
            documents.size_bytes(documents.serialise(after)) if size_bytes is None else size_bytes
        ),
        base_size_bytes=base.size_bytes,
    )


def protected_environments(changeset: Sequence[Edit]) -> list[str]:
    """The protected environments (``permissions.is_protected``) a changeset edits."""
    return sorted({e.environment for e in changeset if permissions.is_protected(e.environment)})


# --------------------------------------------------------------------------------------------
# Saving


CHANGE_ID = re.compile(r"[A-Za-z0-9-]{16,64}")

#: The salt of signed change ids (Django's signing: HMAC with ``SECRET_KEY``).
_CHANGE_ID_SALT = "secrets_admin.change_id"
#: How long a review's change id stays valid (a day: a review left open overnight is redone).
CHANGE_ID_MAX_AGE = 24 * 3600


class ForeignChangeId(InvalidChange):
    """A change id this server did not mint for this user, secret and base version (400)."""

    code = "ForeignChangeId"


def new_change_id(*, user: Any, name: str, base_version_id: str) -> str:
    """A fresh change id, minted by the server when a review page is rendered and carried by its
    confirm form: a random nonce signed (``django.core.signing``) together with the user's id,
    the secret's name and the base version it was reviewed on. Only :func:`open_change_id` with
    the same user, secret and base accepts it, so a browser can neither guess nor reuse one.
    """
    payload = {
        "u": getattr(user, "pk", None),
        "s": name,
        "b": base_version_id,
        "n": uuid.uuid4().hex,
    }
    return signing.dumps(payload, salt=_CHANGE_ID_SALT)


def open_change_id(
    change_id: str, *, context: audit.Context, name: str, base_version_id: str
) -> str:
    """The nonce of a change id minted by :func:`new_change_id` for ``context.user``, ``name``
    and ``base_version_id`` (32 hex digits; it becomes part of a ``ClientRequestToken``).

    Raises :class:`ForeignChangeId` (400) for a missing, tampered, expired
    (older than :data:`CHANGE_ID_MAX_AGE` seconds) or foreign id: another user's, another
    secret's, another base version's (ASVS 5.0 2.2: the server validates what the browser
    sends).
    """
    refused = ForeignChangeId(
        "This change id was not issued for you, this secret and this version (or it is older "
        "than a day), so nothing was saved. Review the change again."
    )
    try:
        data = signing.loads(change_id[:1024], salt=_CHANGE_ID_SALT, max_age=CHANGE_ID_MAX_AGE)
    except signing.BadSignature:
        raise refused from None
    user = context.user
    expected = {
        "u": getattr(user, "pk", None),
        "s": name,
        "b": base_version_id,
    }
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        raise refused
    nonce = data.get("n")
    if not isinstance(nonce, str) or not CHANGE_ID.fullmatch(nonce):
        raise refused
    return nonce


def changeset_digest(changeset: Sequence[Edit]) -> str:
    """``HMAC-SHA256(PORTAL_FINGERPRINT_KEY, the canonical changeset)`` in hex: tells two
    changesets apart (values included) without holding a value, like a fingerprint."""
    canonical = [[e.op, e.environment, e.service, e.key, e.value] for e in changeset]
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), canonical)


def request_token(
    name: str, change_id: str, base_version_id: str, changeset_digest: str = ""
) -> str:
    """The ``ClientRequestToken`` (and so the ``VersionId``) of one change applied on one base.

    Derived, not random: the same change (id and :func:`changeset_digest`) on the same base (a
    double submit, a retry after a timeout) gives the same token, and AWS answers a repeated
    ``PutSecretValue`` with the same token and text with the existing version (AWS API reference: PutSecretValue, ClientRequestToken);
    other values under the same id give another token. A rebase changes the base and so the
    token. UUID-shaped (36 characters, within AWS's 32-64).
    """
    seed = f"{name}\n{change_id}\n{base_version_id}"
    if changeset_digest:
        seed += f"\n{changeset_digest}"
    digest = hashlib.sha256(seed.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def source_identity(context: audit.Context) -> str:
    user = context.user
    return user.get_username() if user is not None else ""


def _earlier_success(
    name: str, nonce: str, *, author: str, base_version_id: str, digest: str
) -> AuditEvent | None:
    """The landed save that this one repeats: the same change id, and also the same author,
    secret, base version and changeset digest (a matching id alone never passes for a save)."""
    return (
        AuditEvent.objects.filter(
            secret=name,
            outcome="succeeded",
            actor_username=author,
            detail__change_id=nonce,
            detail__submitted_base=base_version_id,
            detail__changeset_digest=digest,
        )
        .exclude(new_version="")
        .order_by("-seq")
        .first()
    )


def single_environment(changeset: Sequence[Edit]) -> str:
    envs = {e.environment for e in changeset}
    return envs.pop() if len(envs) == 1 else ""


def apply_for_write(
    name: str, base: Version, changeset: Sequence[Edit]
) -> tuple[dict[str, Any], str]:
    """The document ``changeset`` makes of ``base`` and its text, serialised once and checked
    against AWS's size limit before any write (moto does not enforce it).

    Raises :class:`~secrets_admin.errors.InvalidChange` (an edit that can't apply),
    :class:`~secrets_admin.errors.NoChanges`, :class:`~secrets_admin.aws.SecretTooLarge`.
    """
    try:
        new_doc = changesets.apply(base.document, changeset)
    except changesets.ChangesetError as exc:
        raise InvalidChange(f"This change can't be applied: {exc}.") from None
    if same_document(new_doc, base.document):
        raise NoChanges()
    new_text = documents.serialise(new_doc)
    aws.check_size(new_text, secret=name)
    return new_doc, new_text


def save_changeset(
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
    """Save ``changeset`` on ``base`` as one new version: the write protocol (README "How a save works"), steps 2-6,
    audited as ``action`` (one attempt, one outcome event with ``detail`` and the per-cell
    fingerprints). ``whole_environments``: environments judged as a whole for conflicts (a
    restore). The document is serialised once (again only after a rebase).

    Raises, with nothing written: :class:`~secrets_admin.errors.InvalidChange`,
    :class:`~secrets_admin.errors.NoChanges`, :class:`~secrets_admin.aws.SecretTooLarge`,
    :class:`~secrets_admin.audit.AuditUnavailable`. After writes that did not land:
    :class:`~secrets_admin.errors.Conflict`, :class:`~secrets_admin.errors.SaveContended`,
    :class:`~secrets_admin.aws.AwsError`. :class:`~secrets_admin.errors.SavedUnrecorded` when
    it landed but its outcome could not be audited. A repeat of ``change_id`` that landed
    returns its result with ``already_saved``.
    """
    nonce = open_change_id(change_id, context=context, name=name, base_version_id=base.version_id)
    if change_request is None and context.user is not None:
        # Scopes: a direct save needs the engineer role on this secret in every environment it
        # edits (an approved change request was checked when it was decided).
        envs = {e.environment for e in changeset} | set(whole_environments)
        permissions.require_on(context.user, permissions.Action.EDIT, name, envs)
    new_doc, new_text = apply_for_write(name, base, changeset)
    digest = changeset_digest(changeset)
    earlier = _earlier_success(
        name,
        nonce,
        author=source_identity(context),
        base_version_id=base.version_id,
        digest=digest,
    )
    if earlier is not None:
        return SaveResult(
            name=name,
            new_version_id=earlier.new_version,
            base_version_id=earlier.base_version,
            already_saved=True,
        )
    detail = {
        **detail,
        "change_id": nonce,
        "submitted_base": base.version_id,
        "changeset_digest": digest,
        "edits": len(changeset),
    }
    run = _SwapRun(
        name, base, changeset, new_doc, new_text, source_identity(context), whole_environments
    )
    run.digest = digest
    outcome: SaveResult | Conflict | SaveContended | aws.AwsError | None = None
    try:
        with audit.attempt(
            action,
            context=context,
            secret=name,
            environment=single_environment(changeset),
            base_version=base.version_id,
            # The first try's version id (= its ClientRequestToken): audit_reconcile asks AWS
            # whether it holds AWSCURRENT; rebased tries are listed in detail.staged_versions.
            new_version=request_token(name, nonce, base.version_id, digest),
            change_request=change_request,
            detail=dict(detail),  # a copy: the outcome's detail grows below
        ) as handle:
            detail["staged_versions"] = run.staged  # filled as the run goes
            try:
                outcome = run.execute(nonce, max_rebases)
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
        after_write(name, outcome.new_version_id, run.new_doc, outcome.size_bytes)
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
        new_text: str,
        identity: str,
        whole_environments: Sequence[str],
    ) -> None:
        self.name = name
        self.base = base
        self.changeset = changeset
        self.new_doc = new_doc
        self.new_text = new_text
        self.identity = identity
        self.whole_environments = whole_environments
        self.staged: list[str] = []
        self.digest = ""  # the submitted changeset's digest: part of every try's token

    def __repr__(self) -> str:
        return f"_SwapRun({self.name!r}, base={self.base.version_id!r})"

    def execute(self, change_id: str, max_rebases: int) -> SaveResult | Conflict | SaveContended:
        for rebased in range(max_rebases + 1):
            staged = self._stage(change_id)
            if self._swap(staged):
                landed = compare(
                    self.name,
                    self.base,
                    self.new_doc,
                    size_bytes=documents.size_bytes(self.new_text),
                )
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
            clashes = changesets.conflicting_cells(
                self.base.document,
                current.document,
                self.changeset,
                whole_environments=self.whole_environments,
            )
            if clashes:
                return self._conflict(clashes, current, staged)
            self.changeset = changesets.rebase_changeset(current.document, self.changeset)
            self.base = current
            self.new_doc = changesets.apply(current.document, self.changeset)
            if same_document(self.new_doc, current.document):
                # Someone else already made exactly this change: nothing left to save.
                return SaveResult(
                    name=self.name,
                    new_version_id=current.version_id,
                    base_version_id=current.version_id,
                    rebased=rebased + 1,
                    already_saved=True,
                )
            self.new_text = documents.serialise(self.new_doc)
        return SaveContended()

    def _stage(self, change_id: str) -> str:
        staged = aws.stage_version(
            self.name,
            text=self.new_text,
            token=request_token(self.name, change_id, self.base.version_id, self.digest),
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

    def _conflict(self, clashes: list[CellRef], current: Version, staged: str) -> Conflict:
        return Conflict(
            name=self.name,
            cells=[
                ConflictCell(
                    *cell,
                    base=cell_state(self.base.document, cell),
                    theirs=cell_state(current.document, cell),
                    yours=cell_state(self.new_doc, cell),
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
        handle.succeeded(
            new_version=outcome.new_version_id,
            base_version=outcome.base_version_id,
            detail={**detail, **_result_detail(outcome)},
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


def _result_detail(landed: SaveResult) -> dict[str, Any]:
    return {
        "cells": [c.as_detail() for c in landed.cells],
        "structure": [
            {"status": s.status, "environment": s.environment, "service": s.service}
            for s in landed.structure
        ],
        "counts": landed.counts,
        "environments": landed.environments,
        "rebased": landed.rebased,
        "size_bytes": landed.size_bytes,
    }


def listing_write_through(name: str, version_id: str = "") -> None:
    """Update ``name``'s one entry of the shared listing after a write that landed (never a
    re-listing of the account: ``listing.record_write``). A failed ``DescribeSecret`` is logged,
    not raised: the write itself has landed and the timed listing corrects the entry."""
    try:
        listing.record_write(name, version_id)
    except aws.AwsError as exc:
        log.warning("listing entry of %s not updated after a write: %s", name, exc.code)


def after_write(name: str, version_id: str, document: dict[str, Any], size: int) -> None:
    """Update the listing's entry now; after the response has been sent
    (:func:`~secrets_admin.after_response.defer`), remember the new structure (names only) of
    a conforming ``document`` of ``size`` bytes just written and index its cells' fingerprints
    (no serialising or parsing again, no AWS call beyond the listing's)."""
    listing_write_through(name, version_id)

    def derived_records() -> None:
        try:
            listing.remember(
                name,
                version_id,
                documents.Classified(kind="conforming", document=document, size_bytes=size),
            )
            index.record_write(name=name, version_id=version_id, document=document)
        except DatabaseError as exc:  # the save landed; a stale summary shows "not read yet"
            log.warning(
                "could not record the summary of %s after a save: %s", name, type(exc).__name__
            )

    after_response.defer(derived_records)


def same_document(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` serialise to the same text: equal values of the same JSON types
    with object keys in the same order (``documents.serialise`` keeps order), without
    serialising either."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_document(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_document(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
