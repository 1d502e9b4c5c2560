"""Read use cases: open a secret as a grid, reveal one cell (audited), fingerprints, compare two
environments, integration snippets.

A grid, a comparison and the integration page each cost one ``DescribeSecret`` and one
``GetSecretValue`` (DESIGN.md "Cost and speed"); a reveal one ``GetSecretValue`` of the version on
screen. Values leave this module only in the return value of :func:`cell_reveal`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from . import audit, aws, documents, grid, integration, listing
from .grid import CellView as CellView  # the grid's cell view model, also used by the editor
from .grid import RowView


def fingerprint(value: Any) -> str:
    """HMAC-SHA256 of a value with ``PORTAL_FINGERPRINT_KEY`` (hex, 64 chars)."""
    return documents.fingerprint(settings.PORTAL_FINGERPRINT_KEY.encode(), value)


@dataclass
class SecretPage:
    """Everything the grid page shows. ``read_only_reason`` is empty when the secret is editable."""

    name: str
    description: aws.SecretDescription
    version_id: str = ""
    classified: documents.Classified | None = None
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
    """Read a secret for the grid: ``DescribeSecret`` then (when it has a value) one
    ``GetSecretValue`` of ``AWSCURRENT`` (or of ``version_id`` when given: the editor's base).
    Raises :class:`~secrets_admin.aws.AwsError` (``SecretNotFound`` ...) with a user-facing
    message."""
    description = aws.describe(name)
    page = SecretPage(name=name, description=description)
    page.problem, page.read_only_reason = grid.description_problems(description)
    if page.problem:
        return page
    value = aws.read_version(name, version_id) if version_id else aws.read_current(name)
    page.version_id = value.version_id
    classified = listing.classify_value(value)
    page.classified = classified
    if version_id is None:  # the list describes the current version only
        listing.remember(name, value.version_id, classified)
    if not classified.conforming:
        page.problem = page.read_only_reason = grid.NON_STANDARD
        return page
    model = grid.build_model(value.version_id, classified)
    page.environments, page.protected, page.rows = model.environments, model.protected, model.rows
    return page


class CellNotFound(Exception):
    """The asked cell is not in the version on screen."""

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
) -> str:
    """Return one cell's value from version ``version_id`` (one ``GetSecretValue``), after
    committing the reveal's one audit event (DESIGN.md "Audit").

    Fail closed: the value is returned only once its ``(reveal, succeeded)`` event is committed
    (:class:`~secrets_admin.audit.AuditUnavailable` otherwise, and nothing is returned). An AWS
    error or a cell absent from that version is recorded as ``(reveal, failed)`` with its code,
    then raised: :class:`~secrets_admin.aws.AwsError` or :class:`CellNotFound`.
    """
    cell_fields = {
        "secret": name,
        "environment": environment,
        "service": service,
        "key": key,
        "version_id": version_id,
    }
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
        audit.record_reveal(context, error_code=code, **cell_fields)
        raise
    audit.record_reveal(context, fingerprint=fingerprint(cell), **cell_fields)
    return display_value(cell)


# --------------------------------------------------------------------------------------------
# Comparing two environments (issue 7, part 1)


@dataclass
class ComparePage:
    """A comparison of environments ``a`` and ``b`` of one secret: fingerprints, never values.

    ``problem`` is set (and ``rows`` empty) when there is nothing to compare; ``bad_request``
    says the problem is an environment name that is not in the secret.
    """

    secret: SecretPage
    a: str
    b: str
    rows: list[documents.Comparison] = field(default_factory=list)
    counts: dict[documents.ComparisonStatus, int] = field(default_factory=dict)
    problem: str = ""
    bad_request: bool = False

    @property
    def count_labels(self) -> list[tuple[str, str, int]]:
        """``(status, label with the environment names, count)`` in display order."""
        names = {"only_a": f"only in {self.a}", "only_b": f"only in {self.b}"}
        return [
            (status, names.get(status, label), self.counts.get(status, 0))
            for status, label in documents.COMPARISON_STATUSES.items()
        ]

    @property
    def differences(self) -> int:
        return sum(1 for row in self.rows if row.differs)

    def table(
        self, *, only_differences: bool = False
    ) -> list[tuple[documents.Comparison, list[tuple[str, str, str]]]]:
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


def environment_compare(name: str, a: str, b: str) -> ComparePage:
    """Open ``name`` (one ``DescribeSecret``, one ``GetSecretValue``) and compare environments
    ``a`` and ``b`` by fingerprint (:func:`documents.compare_environments`).

    Empty ``a``/``b`` pick :func:`default_pair`. Raises :class:`~secrets_admin.aws.AwsError`;
    every other problem (non-standard secret, unknown or equal environments) is in ``problem``.
    """
    secret = secret_open(name)
    if not secret.conforming:
        return ComparePage(secret, a, b, problem=secret.problem)
    envs = secret.environments
    if not a and not b:
        a, b = default_pair(envs)
    unknown = [e for e in (a, b) if e and e not in envs]
    if unknown:
        return ComparePage(
            secret,
            a,
            b,
            problem=f"This secret has no environment {unknown[0]!r}. Choose two of: "
            f"{', '.join(envs)}.",
            bad_request=True,
        )
    if not a or not b:
        return ComparePage(
            secret, a, b, problem="This secret has fewer than two environments to compare."
        )
    if a == b:
        return ComparePage(secret, a, b, problem="Choose two different environments to compare.")
    if secret.classified is None:  # narrowing for the type checker; cannot happen
        raise RuntimeError("unexpected: secret.classified is None (conforming implies classified)")
    rows = documents.compare_environments(secret.classified.document, a, b, fingerprint=fingerprint)
    return ComparePage(secret, a, b, rows=rows, counts=documents.count_comparisons(rows))


# --------------------------------------------------------------------------------------------
# Integration snippets (issue 7, part 6)

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
    secret = secret_open(name)
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
    if secret.conforming:
        if secret.classified is None:  # narrowing for the type checker; cannot happen
            raise RuntimeError(
                "unexpected: secret.classified is None (secret.classified is set here)"
            )
        page.variables = integration.env_vars(secret.classified.document)
        page.typescript = integration.typescript_snippet(name, page.variables)
        page.dotenv = integration.dotenv_names(page.variables)
    return page
