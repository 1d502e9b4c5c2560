"""Restore one environment of a secret to its content in an older version, as a new version on
top of the current one (never move ``AWSCURRENT`` wholesale to an old version).
"""

from __future__ import annotations

from .. import audit, changesets
from ..changesets import Edit
from ..models import ChangeRequest
from .editor import save_or_propose
from .protocol import MAX_REBASES, SaveResult, Version, read_version


def restore_changeset(*, name: str, environment: str, version_id: str, base: Version) -> list[Edit]:
    """The changeset that makes ``environment`` of ``base`` as it was in ``version_id``.

    Reads ``version_id`` (one ``GetSecretValue``). Other environments are untouched: a
    restore never moves ``AWSCURRENT`` wholesale to an old version. Raises :class:`NotEditable` when the
    old version breaks the standard, :class:`~secrets_admin.aws.AwsError`.
    """
    old = read_version(name, version_id)
    return changesets.restore_changeset(base.document, old.document, environment)


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
    :func:`.editor.secret_save_changes`.
    """
    base = read_version(name, base_version_id)
    changeset = restore_changeset(
        name=name, environment=environment, version_id=version_id, base=base
    )
    return save_or_propose(
        name=name,
        base=base,
        changeset=changeset,
        context=context,
        change_id=change_id,
        comment=f"Restore {environment} to its content in version {version_id}.",
        max_rebases=max_rebases,
        action=audit.AuditAction.ENVIRONMENT_RESTORE,
        detail={"kind": "restore_environment", "environment": environment, "from": version_id},
        whole_environments=[environment],
    )
