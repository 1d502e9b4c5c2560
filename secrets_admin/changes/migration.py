"""The migration wizard's use cases: legacy secrets and ``.env`` files into a unified secret
(the standard's migration checklist). Choose sources (:func:`migration_candidates`), preview the
plan (:func:`migration_plan`, nothing written), apply it (:func:`secret_migrate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from .. import audit, aws, changesets, compliance, documents, lint, migration, reads
from ..errors import InvalidChange, NoChanges
from ..models import ChangeRequest
from . import lifecycle
from .comparison import stored_values_compare
from .editor import secret_save_changes
from .protocol import Version, read_version


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
    return _candidates(list(aws.iter_secrets()))


def _candidates(listed: Sequence[aws.SecretMeta]) -> list[MigrationCandidate]:
    """:func:`migration_candidates` of the secrets ``listed`` by ``ListSecrets``."""
    policy, _ = lint.policy()
    metas = [m for m in listed if not m.scheduled_for_deletion and not m.owning_service]
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


#: How the ``.env`` source is named in a plan (its values were typed or uploaded by the person).
ENV_FILE = ".env file"


@dataclass(frozen=True)
class MigrationSource:
    """One chosen source and its mapping: a legacy secret (``name``) or the ``.env`` file
    (``name == ""``). ``service == ""``: services come from the source itself."""

    name: str
    environment: str
    service: str

    @property
    def label(self) -> str:
        return self.name or ENV_FILE


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


def _refuse_unlisted(sources: Sequence[MigrationSource]) -> None:
    """Refuse sources the wizard does not list (:func:`migration_candidates`): a name typed into
    the form (a unified secret, another service's secret, one scheduled for deletion) is never
    read or migrated. A name AWS does not hold reads nothing and stays that source's problem in
    the plan. Raises :class:`InvalidChange` naming them; ceil(N/100) ``ListSecrets``."""
    named = [s.name for s in sources if s.name]
    if not named:
        return
    metas = list(aws.iter_secrets())
    offered = {c.name for c in _candidates(metas)}
    # A listed secret deleted since is shown as that source's problem ("not found") by the plan.
    unlisted = [n for n in named if n not in offered and n in {m.name for m in metas}]
    if unlisted:
        raise InvalidChange(
            f"{', '.join(sorted(unlisted)[:5])}: not among the legacy secrets this wizard lists, "
            "so it can't be a source. Choose from the list. Nothing was read."
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
    _refuse_unlisted(sources)
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


def migration_preview(
    *,
    repo: str,
    sources: Sequence[MigrationSource],
    context: audit.Context,
    env_text: str = "",
    overwrite: bool = False,
) -> migration.Plan:
    """:func:`migration_plan` for the wizard's preview page. The plan says whether each typed
    ``.env`` value equals the unified secret's (``same``), so those cells are recorded and
    charged as a comparison (:func:`.comparison.stored_values_compare`). Raises as
    :func:`migration_plan` and :class:`~secrets_admin.ratelimit.ComparisonsLimited`."""
    plan = migration_plan(repo=repo, sources=sources, env_text=env_text, overwrite=overwrite)
    stored_values_compare(
        name=plan.target,
        base_version_id=plan.base_version_id,
        cells=[
            (c.environment, c.service, c.key)
            for c in plan.cells
            if c.source == ENV_FILE and c.existing.present
        ],
        context=context,
    )
    return plan


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

    The legacy secrets are never deleted here (:func:`.lifecycle.legacy_secret_schedule_deletion`).
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
        result = secret_save_changes(
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
        document = changesets.apply({}, plan.changeset)
        created = lifecycle.secret_create(
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
                    "after": c.given.fingerprint,
                }
                for c in plan.cells
                if c.written
            ],
        },
    )
    return MigrationResult(
        plan.target, version_id, not plan.exists, plan.writes, legacy, change_request_id
    )
