"""A secret's life cycle in the portal (admins): create a unified secret with
its first version, cancel a scheduled deletion, and schedule the deletion of a legacy secret
once it was migrated (the standard's migration checklist's last step).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings

from .. import audit, aws, changesets, compliance, documents, lint
from ..changesets import Edit
from ..errors import ChangeRefused, InvalidChange, SecretExists, SecretPendingDeletion
from ..models import AuditEvent
from .protocol import (
    after_write,
    listing_write_through,
    open_change_id,
    request_token,
    source_identity,
)


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
    """Create ``<repo><suffix>`` with its first version (admins).

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
        first = changesets.apply({}, edits) if document is None else document
    except changesets.ChangesetError as exc:
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
                source_identity=source_identity(context),
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
    after_write(name, created.version_id, first, documents.size_bytes(text))
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
        aws.restore_deleted(name, source_identity=source_identity(context))
        handle.succeeded()
    listing_write_through(name)


def secret_first_version(*, name: str, context: audit.Context, change_id: str) -> str:
    """Give ``name``, a unified secret created without a value, its first version: ``{}``, the
    standard's structure before its first environment (the editor then adds environments).
    Returns the new version id.

    AWS makes the first version of a secret ``AWSCURRENT`` by itself (PutSecretValue), so the
    version is put with the temporary label and one ``DescribeSecret`` tells whether it became
    current: of two first versions written at once only one does, and the other person is told.
    Audited as a save, committed first. ``change_id`` is minted for this user and secret with
    an empty base version (:func:`.protocol.new_change_id`). Raises
    :class:`~secrets_admin.errors.InvalidInput` (a foreign or tampered change id),
    :class:`~secrets_admin.errors.SecretExists` (the secret has a value already),
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    nonce = open_change_id(change_id, context=context, name=name, base_version_id="")
    if aws.describe(name).has_value:
        raise SecretExists(f"{name} has a value already: open the editor to change it.")
    text = documents.serialise({})
    token = request_token(name, nonce, "")
    identity = source_identity(context)
    detail = {"kind": "first_version", "change_id": change_id}
    landed = False
    with audit.attempt(audit.AuditAction.SAVE, context=context, secret=name, detail=detail) as h:
        version_id = aws.stage_version(name, text=text, token=token, source_identity=identity)
        landed = aws.current_of(aws.describe(name)) == version_id
        if landed:
            h.succeeded(new_version=version_id, detail=detail)
        else:
            h.conflicted(detail=detail)
    aws.drop_staging_label(name, version_id=version_id, source_identity=identity)
    if not landed:
        raise SecretExists(f"Someone else gave {name} a value first: open the editor to change it.")
    after_write(name, version_id, {}, documents.size_bytes(text))
    return version_id


# --------------------------------------------------------------------------------------------


def legacy_secret_schedule_deletion(
    *, name: str, recovery_days: int, context: audit.Context
) -> datetime:
    """Schedule the deletion of a legacy secret with a recovery window (7-30 days;
    ``DeleteSecret RecoveryWindowInDays``), audited first (admins; the standard's migration
    checklist's last step). Unified secrets are refused: the portal deletes only what was
    migrated away. Returns the deletion date.

    Only a secret that :func:`legacy_secret_of` accepts is deleted (the admin's reach stays
    inside the standard's world: never a unified secret, another service's secret, or any name
    typed into a form).

    Raises :class:`InvalidChange` (a unified secret, not a legacy secret of an existing unified
    secret nor migrated by the portal, a window outside 7-30 days),
    :class:`~secrets_admin.aws.AwsError`, :class:`~secrets_admin.audit.AuditUnavailable`.
    """
    if name.endswith(settings.PORTAL_SECRET_SUFFIX):
        raise InvalidChange(
            f"{name} is a unified secret; the portal schedules deletion of legacy secrets only."
        )
    low, high = aws.RECOVERY_WINDOW_DAYS
    if not low <= recovery_days <= high:
        raise InvalidChange(f"Choose a recovery window of {low} to {high} days.")
    unified = legacy_secret_of(name)
    detail = {"recovery_days": recovery_days, "legacy_of": unified}
    with audit.attempt(
        audit.AuditAction.SECRET_DELETE_SCHEDULE, context=context, secret=name, detail=detail
    ) as handle:
        when = aws.schedule_deletion(
            name, recovery_days=recovery_days, source_identity=source_identity(context)
        )
        handle.succeeded(detail={**detail, "deletion_date": when.isoformat()})
    listing_write_through(name)
    return when


# Change requests: a second person for protected environments (invariant 4)
#
# Statuses: open -> approved -> applied | conflicted; open -> rejected | cancelled | expired;


def legacy_secret_of(name: str) -> str:
    """The unified secret whose legacy secret ``name`` is: the compliance check reads ``name``
    as ``<repo>-<service>-<env>`` (or ``<repo>-<env>``, ``<repo>-<service>``) of a unified
    secret that exists (``compliance.legacy_match``, the standard's "DON'T Create Multiple
    Secrets"), or the portal's migration wizard migrated ``name`` into a unified secret that
    still exists (a ``secret_migrate`` audit event names it as a source).

    ceil(N/100) ``ListSecrets``; no value is read. Raises :class:`InvalidChange` otherwise
    (also for a secret that is missing, already scheduled for deletion or owned by another AWS
    service), :class:`~secrets_admin.aws.AwsError`.
    """
    policy, _ = lint.policy()
    metas = {m.name: m for m in aws.iter_secrets() if not m.scheduled_for_deletion}
    meta = metas.get(name)
    if meta is None or meta.owning_service:
        raise InvalidChange(
            f"{name} is not a live secret the portal manages (missing, already scheduled for "
            "deletion, or owned by another AWS service). Nothing was scheduled."
        )
    repos = {n[: -len(policy.suffix)] for n in metas if n.endswith(policy.suffix)}
    environments = [*policy.required_environments, *policy.known_environments]
    match = compliance.legacy_match(name, repos, environments)
    if match is not None and match.repo:
        return f"{match.repo}{policy.suffix}"
    migrations = AuditEvent.objects.filter(
        action=audit.AuditAction.SECRET_MIGRATE, outcome=audit.Outcome.SUCCEEDED
    ).order_by("-seq")
    for event in migrations:
        if name in (event.detail.get("sources") or []) and event.secret in metas:
            return event.secret
    raise InvalidChange(
        f"{name} is not a legacy secret of an existing unified secret, and the portal did not "
        "migrate it, so the portal will not schedule its deletion. Migrate it first (or delete "
        "it in the AWS console if it is not part of the standard's world). Nothing was scheduled."
    )
