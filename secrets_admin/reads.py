"""Read use cases: open a secret as a grid, reveal one cell (audited), fingerprints, compare two
environments, integration snippets.

A grid, a comparison and the integration page each cost one ``DescribeSecret`` and one
``GetSecretValue`` (README "Cost model"); a reveal one ``GetSecretValue`` of the version on
screen. Values leave this module only in the return value of :func:`cell_reveal`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from . import (
    audit,
    aws,
    changesets,
    diffs,
    documents,
    errors,
    grid,
    integration,
    listing,
    permissions,
)
from .changes import change_request_apply, protocol
from .grid import CellView as CellView  # the grid's cell view model, also used by the editor
from .grid import RowView
from .models import ChangeRequest


def fingerprint(value: Any) -> str:
    """HMAC-SHA256 of a value with ``PORTAL_FINGERPRINT_KEY`` (hex, 64 chars)."""
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), value)


@dataclass
class SecretPage:
    """Everything a secret's pages show of it, as a view model: names, per-cell types and
    fingerprints (``rows``), never the parsed document. ``classified`` holds what the
    classification says (kind, reasons, size in bytes) without the document, as
    ``grid.GridPage.classified`` does. ``read_only_reason`` is empty when the secret is
    editable."""

    name: str
    description: aws.SecretDescription
    version_id: str = ""
    classified: grid.Facts | None = None
    environments: list[str] = field(default_factory=list)
    protected: dict[str, bool] = field(default_factory=dict)
    rows: list[RowView] = field(default_factory=list)
    problem: str = ""  # why no grid is shown (deleted, no value, binary, non-standard)
    read_only_reason: str = ""

    @property
    def conforming(self) -> bool:
        return self.classified is not None and self.classified.conforming

    @property
    def missing_cells(self) -> dict[str, int]:
        """Drift: per environment, how many rows that another environment has it lacks."""
        return {
            env: sum(1 for row in self.rows for e, c in row.cells if e == env and not c.present)
            for env in self.environments
        }


def secret_open(name: str, *, version_id: str | None = None) -> SecretPage:
    """Read a secret for its pages: ``DescribeSecret`` then (when it has a value) one
    ``GetSecretValue`` of ``AWSCURRENT`` (or of ``version_id`` when given: the editor's base).
    Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound`` ...) with a user-facing
    message."""
    return _secret_read(name, version_id)[0]


def _secret_read(
    name: str, version_id: str | None
) -> tuple[SecretPage, documents.Classified | None]:
    """:func:`secret_open`'s page, and the classified version it was built from (``None`` when
    no value was read). The classified version holds values: it serves the read use cases here
    (a comparison, the integration snippets, the editor's base), never a template."""
    description = aws.describe(name)
    page = SecretPage(name=name, description=description)
    page.problem, page.read_only_reason = grid.description_problems(description)
    if page.problem:
        return page, None
    value = aws.read_version(name, version_id) if version_id else aws.read_current(name)
    page.version_id = value.version_id
    classified = listing.classify_value(value)
    if version_id is None:  # the list describes the current version only
        listing.remember(name, value.version_id, classified)
    model = grid.build_model(value.version_id, classified)
    page.classified = model.facts
    if not classified.conforming:
        page.problem = page.read_only_reason = grid.NON_STANDARD
        return page, classified
    page.environments, page.protected, page.rows = model.environments, model.protected, model.rows
    return page, classified


class CellNotFound(errors.StateConflict):
    """The asked cell is not in the version on screen (409)."""

    code = "CellNotFound"
    message = "That cell is not in the version shown. Reload the page to see the current version."


def display_value(value: Any) -> str:
    """A value as shown on reveal: strings as they are, other JSON types as their exact JSON."""
    if isinstance(value, str) and not isinstance(value, documents.JsonNumber):
        return value
    return documents.serialise(value)


def cell_reveal(
    *,
    name: str,
    version_id: str,
    environment: str,
    service: str,
    key: str,
    context: audit.Context,
    reason: str = "",
) -> str:
    """Return one cell's value from version ``version_id`` (one ``GetSecretValue``), after
    committing the reveal's one audit event.

    Fail closed: the value is returned only once its ``(reveal, succeeded)`` event is committed
    (:class:`~secrets_admin.audit.AuditUnavailable` otherwise, and nothing is returned). An AWS
    error or a cell absent from that version is recorded as ``(reveal, failed)`` with its code,
    then raised: :class:`~secrets_admin.aws.AwsError` or :class:`CellNotFound`. ``reason``: why
    the person reveals it (asked in protected environments), kept in the chained event.
    """
    cell_fields = {
        "secret": name,
        "environment": environment,
        "service": service,
        "key": key,
        "version_id": version_id,
    }
    audit.check_devices()  # no value is read while the audit devices lag too far behind
    try:
        value = aws.read_version(name, version_id)
        if value.text is None:
            raise CellNotFound()
        try:
            cell = documents.get_cell(documents.parse(value.text), environment, service, key)
        except (KeyError, ValueError, TypeError):
            raise CellNotFound() from None
    except (aws.AwsError, CellNotFound) as exc:
        code = getattr(exc, "code", "") or type(exc).__name__
        audit.record_reveal(context, error_code=code, reason=reason, **cell_fields)
        raise
    audit.record_reveal(context, fingerprint=fingerprint(cell), reason=reason, **cell_fields)
    return display_value(cell)


# --------------------------------------------------------------------------------------------
# Comparing two environments


@dataclass
class EnvironmentDiff:
    """A comparison of environments ``a`` and ``b`` of one secret: fingerprints, never values.

    ``problem`` is set (and ``rows`` empty) when there is nothing to compare; ``bad_request``
    says the problem is an environment name that is not in the secret.
    """

    secret: SecretPage
    a: str
    b: str
    rows: list[diffs.Comparison] = field(default_factory=list)
    counts: dict[diffs.ComparisonStatus, int] = field(default_factory=dict)
    problem: str = ""
    bad_request: bool = False

    @property
    def count_labels(self) -> list[tuple[str, str, int]]:
        """``(status, label with the environment names, count)`` in display order."""
        names = {"only_a": f"only in {self.a}", "only_b": f"only in {self.b}"}
        return [
            (status, names.get(status, label), self.counts.get(status, 0))
            for status, label in diffs.COMPARISON_STATUSES.items()
        ]

    @property
    def differences(self) -> int:
        return sum(1 for row in self.rows if row.differs)

    def table(
        self, *, only_differences: bool = False
    ) -> list[tuple[diffs.Comparison, list[tuple[str, str, str]]]]:
        """Rows to show, each with its two sides as ``(environment, type, short fingerprint)``
        (type "" where the key is absent)."""
        return [
            (
                row,
                [
                    (self.a, row.type_a, documents.short(row.fingerprint_a)),
                    (self.b, row.type_b, documents.short(row.fingerprint_b)),
                ],
            )
            for row in self.rows
            if row.differs or not only_differences
        ]


def default_pair(environments: list[str]) -> tuple[str, str]:
    """The environments compared when none are asked: ``dev`` with ``main`` when both exist,
    otherwise the first two ("" where there are too few)."""
    if "dev" in environments and "main" in environments:
        return "dev", "main"
    padded = [*environments, "", ""]
    return padded[0], padded[1]


def environment_diff(name: str, a: str, b: str) -> EnvironmentDiff:
    """Open ``name`` (one ``DescribeSecret``, one ``GetSecretValue``) and compare environments
    ``a`` and ``b`` by fingerprint (:func:`diffs.compare_environments`).

    Empty ``a``/``b`` pick :func:`default_pair`. Raises :class:`~secrets_admin.aws.AwsError`;
    every other problem (non-standard secret, unknown or equal environments) is in ``problem``.
    """
    secret, classified = _secret_read(name, None)
    if classified is None or not classified.conforming:
        return EnvironmentDiff(secret, a, b, problem=secret.problem)
    envs = secret.environments
    if not a and not b:
        a, b = default_pair(envs)
    unknown = [e for e in (a, b) if e and e not in envs]
    if unknown:
        return EnvironmentDiff(
            secret,
            a,
            b,
            problem=f"This secret has no environment {unknown[0]!r}. Choose two of: "
            f"{', '.join(envs)}.",
            bad_request=True,
        )
    if not a or not b:
        return EnvironmentDiff(
            secret, a, b, problem="This secret has fewer than two environments to compare."
        )
    if a == b:
        return EnvironmentDiff(
            secret, a, b, problem="Choose two different environments to compare."
        )
    rows = diffs.compare_environments(classified.document, a, b, fingerprint=fingerprint)
    return EnvironmentDiff(secret, a, b, rows=rows, counts=diffs.count_comparisons(rows))


# --------------------------------------------------------------------------------------------
# Integration snippets

#: How long the account id from STS is kept (it does not change for a running portal).
CALLER_CACHE_KEY = "portal:aws:caller:v1"
CALLER_CACHE_SECONDS = 3600


@dataclass
class IntegrationPage:
    """The IAM policy and environment-variable names for one secret. Names only, no values."""

    secret: SecretPage
    region: str
    caller: aws.CallerIdentity
    policy: dict[str, Any]
    policy_json: str
    policy_cli: str
    kms_note: str = ""
    variables: list[integration.EnvVar] = field(default_factory=list)
    typescript: str = ""
    dotenv: str = ""

    @property
    def clashes(self) -> list[integration.EnvVar]:
        return [v for v in self.variables if v.clashes]


def caller_identity() -> aws.CallerIdentity:
    """:func:`aws.caller_identity`, kept in the cache for an hour (an account id, no secret)."""
    cached = cache.get(CALLER_CACHE_KEY)
    if isinstance(cached, aws.CallerIdentity):
        return cached
    caller = aws.caller_identity()
    cache.set(CALLER_CACHE_KEY, caller, CALLER_CACHE_SECONDS)
    return caller


def secret_integration(name: str) -> IntegrationPage:
    """Open ``name`` (one ``DescribeSecret``, one ``GetSecretValue``; STS ``GetCallerIdentity``
    once an hour) and build its integration snippets. Raises :class:`~secrets_admin.aws.AwsError`."""
    secret, classified = _secret_read(name, None)
    caller = caller_identity()
    region = aws.region()
    kms_id = secret.description.kms_key_id
    kms_key = integration.kms_key_arn(
        kms_id, partition=caller.partition, region=region, account=caller.account
    )
    kms_note = ""
    if kms_id and not kms_key and kms_id.rsplit(":", 1)[-1] != integration.DEFAULT_KMS_ALIAS:
        kms_note = (
            f"This secret is encrypted with the KMS key {kms_id}. Also grant kms:Decrypt on that "
            "key's ARN (an alias cannot be used in a policy's Resource)."
        )
    policy = integration.read_policy(
        partition=caller.partition,
        region=region,
        account=caller.account,
        name=name,
        kms_key=kms_key,
    )
    page = IntegrationPage(
        secret=secret,
        region=region,
        caller=caller,
        policy=policy,
        policy_json=json.dumps(policy, indent=2),
        policy_cli=integration.policy_cli(policy),
        kms_note=kms_note,
    )
    if classified is not None and classified.conforming:
        page.variables = integration.env_vars(classified.document)
        page.typescript = integration.typescript_snippet(name, page.variables)
        page.dotenv = integration.dotenv_names(page.variables)
    return page


# --------------------------------------------------------------------------------------------
# Editor facts: why a secret can't be edited, warnings, version activity (reads only)

#: Versions created in the last 24 hours above which the editor warns: AWS keeps about 100
#: versions per secret and prunes unlabelled ones only once they are 24 hours old.
VERSION_WARNING_24H = 50
VERSION_QUOTA = 100


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


def edit_blocker(page: SecretPage) -> str:
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
            "This secret has no value yet. Start it as an empty unified secret ({}), then add "
            "its first environment in the editor."
        )
    if page.problem:
        return page.problem
    return ""


def edit_warnings(page: SecretPage, activity: VersionActivity | None) -> list[str]:
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


@dataclass
class EditState:
    """What the editor and the review show (a view model, no value): the page of the base
    version, why it can't be edited (``blocker``), warnings and version activity."""

    page: SecretPage
    blocker: str
    warnings: list[str]
    activity: VersionActivity | None

    @property
    def is_current(self) -> bool:
        return self.page.version_id == self.page.description.meta.current_version


def secret_edit_state(*, name: str, version_id: str | None = None) -> EditState:
    """Open ``name`` for editing at ``version_id`` (default: current).

    Costs ``DescribeSecret`` + ``GetSecretValue`` + ``ListSecretVersionIds`` (one per 100
    versions, for the version-quota warning). Reads only. Raises
    :class:`~secrets_admin.aws.AwsError`; :class:`~secrets_admin.aws.AmbiguousCurrent` (409)
    when ``AWSCURRENT`` is on more than one version, a state AWS never produces, so that no
    edit is reviewed, saved or proposed onto a guess.
    """
    return _edit_read(name, version_id)[0]


def secret_edit_base(
    *, name: str, version_id: str | None = None
) -> tuple[EditState, protocol.Version]:
    """:func:`secret_edit_state` and the base version to build a changeset on (it holds values:
    for the review and save use cases, never for a template). Same cost. Raises
    :class:`~secrets_admin.errors.NotEditable` with the reason when the secret can't be edited,
    and as :func:`secret_edit_state`."""
    state, base = _edit_read(name, version_id)
    if state.blocker or base is None:
        raise errors.NotEditable(state.blocker or "This secret can't be edited here.")
    return state, base


def _edit_read(name: str, version_id: str | None) -> tuple[EditState, protocol.Version | None]:
    page, classified = _secret_read(name, version_id)
    aws.refuse_ambiguous_current(name, page.description)
    blocker = edit_blocker(page)
    activity = None
    base = None
    if not blocker and classified is not None:
        activity = version_activity(aws.list_versions(name))
        base = protocol.Version(page.version_id, classified.document, classified.size_bytes)
    return EditState(page, blocker, edit_warnings(page, activity), activity), base


# --------------------------------------------------------------------------------------------
# Change requests (reads only: listing never expires or writes anything)

Status = ChangeRequest.Status


def change_requests_for(
    user: Any, *, mine: bool = False, waiting: bool = False, secret: str = "", status: str = ""
) -> QuerySet[ChangeRequest]:
    """Requests for the list page: ``mine`` (authored by ``user``), ``waiting`` (open, not
    theirs, not voted on by them, and theirs to decide: approver on the secret in every
    environment it touches), ``secret``, ``status`` (``""``: any). Only requests on secrets in
    ``user``'s scope: the others do not exist for them."""
    qs = permissions.visible_rows(user, ChangeRequest.objects.all())
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
    if waiting and not permissions.scope_of(user).unrestricted(permissions.Role.APPROVER):
        mine_to_decide = [
            pk
            for pk, name, envs in qs.values_list("pk", "secret", "environments")
            if permissions.may_approve(user, name, envs)
        ]
        qs = qs.filter(pk__in=mine_to_decide)
    return qs


def bypasses_to_review(user: Any = None) -> QuerySet[ChangeRequest]:
    """Break-glass bypasses no approver has acknowledged yet (on secrets in ``user``'s scope
    when one is given)."""
    qs = ChangeRequest.objects.exclude(bypass_reason="").filter(bypass_acknowledged_at=None)
    return qs if user is None else permissions.visible_rows(user, qs)


@dataclass
class ChangeRequestReview:
    """What an open request would change on the CURRENT version (not the base): per-cell deltas
    current -> proposed, and the cells that conflict when the base moved. No values."""

    current_version_id: str
    cells: list[diffs.CellDelta]
    conflicts: list[protocol.CellRef]
    base_moved: bool


def change_request_review(cr: ChangeRequest) -> ChangeRequestReview:
    """Compare current with what applying ``cr`` would make of it (promote when the base did not
    move, else its changeset rebased on current). ``GetSecretValue`` x 2 (x 3 when the base
    moved). Raises :class:`~secrets_admin.errors.NotEditable`, :class:`~secrets_admin.aws.AwsError`."""
    current = protocol.read_version(cr.secret)
    staged = protocol.read_version(cr.secret, cr.staged_version)
    if current.version_id == cr.base_version:
        return ChangeRequestReview(
            current.version_id,
            protocol.compare(cr.secret, current, staged.document).cells,
            [],
            False,
        )
    base = protocol.read_version(cr.secret, cr.base_version)
    changeset = change_request_apply.changeset_from(cr.structure, staged.document)
    clashes = changesets.conflicting_cells(base.document, current.document, changeset)
    if clashes:  # show the request's own cells only, not others' edits it would seem to undo
        touched = changesets.touched_cells(base.document, changeset)
        cells = [
            c
            for c in protocol.compare(cr.secret, current, staged.document).cells
            if (c.environment, c.service, c.key) in touched
        ]
        return ChangeRequestReview(current.version_id, cells, clashes, True)
    after = changesets.apply(
        current.document, changesets.rebase_changeset(current.document, changeset)
    )
    return ChangeRequestReview(
        current.version_id, protocol.compare(cr.secret, current, after).cells, [], True
    )
