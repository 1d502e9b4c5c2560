"""The review step of every save (edit, restore, environment copy): open the version, build the
changeset and describe what it would do (cells, structure, size, and the protected environments
it edits: saving it then opens a change request). Nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .. import audit, reads
from ..changesets import Edit
from .comparison import typed_values_compare
from .editor import EditIntent, changeset_for, confirm_removals
from .environment_copy import CopyChoice
from .protocol import Preview, Version, preview, protected_environments
from .restore import restore_changeset


def _review(
    *, name: str, version_id: str | None, changeset: Callable[[Version], list[Edit]]
) -> tuple[reads.EditState, Preview]:
    """Open ``name`` at ``version_id`` (current when ``None``), build the changeset on it and
    describe the result. Raises :class:`~secrets_admin.errors.NotEditable` (with the reason),
    what ``changeset`` raises, :class:`~secrets_admin.aws.AwsError`."""
    state, base = reads.secret_edit_base(name=name, version_id=version_id)
    edits = changeset(base)
    result = preview(name=name, base=base, changeset=edits)
    return state, dataclasses.replace(result, needs_approval=protected_environments(edits))


def secret_preview_changes(
    *, name: str, base_version_id: str, intent: EditIntent, context: audit.Context
) -> tuple[reads.EditState, Preview]:
    """The review of the editor's ``intent`` on version ``base_version_id``. An empty preview
    means "no changes". The review tells whether typed values equal stored ones, so it is
    recorded and charged as a comparison (:func:`.comparison.typed_values_compare`). Raises as
    :func:`_review`, :class:`~secrets_admin.errors.InvalidChange`,
    :class:`~secrets_admin.ratelimit.ComparisonsLimited` (429),
    :class:`~secrets_admin.audit.AuditUnavailable`."""

    def changeset(base: Version) -> list[Edit]:
        confirm_removals(name=name, intent=intent, document=base.document)
        edits = changeset_for(intent, base.document)
        typed_values_compare(name=name, base=base, cells=intent.values, context=context)
        return edits

    return _review(name=name, version_id=base_version_id, changeset=changeset)


def secret_preview_restore(
    *, name: str, environment: str, version_id: str
) -> tuple[reads.EditState, Preview]:
    """The review of "restore ``environment`` to version ``version_id``" on the current version.
    A protected environment is previewed like any other (``needs_approval`` names it)."""
    return _review(
        name=name,
        version_id=None,
        changeset=lambda base: restore_changeset(
            name=name, environment=environment, version_id=version_id, base=base
        ),
    )


def secret_preview_environment_copy(
    *, name: str, base_version_id: str, copy: CopyChoice
) -> tuple[reads.EditState, Preview]:
    """The review of ``copy`` (rows from one environment to another) on version
    ``base_version_id`` (the compare page's version). Raises as :func:`_review` and
    :class:`~secrets_admin.errors.InvalidChange`."""
    return _review(
        name=name,
        version_id=base_version_id,
        changeset=lambda base: copy.changeset(base.document),
    )
