"""The gateway to AWS Secrets Manager: the only module that imports boto3 or botocore.

Every AWS error leaves this module as an :class:`AwsError` subclass whose ``message`` is one
sentence naming the cause and the fix (DESIGN.md invariant 6; the standard's "Troubleshooting"
section is the model). Messages never contain a secret value.

Configuration comes from boto3's own settings: ``AWS_REGION``/``AWS_DEFAULT_REGION``, the default
credential chain, and ``AWS_ENDPOINT_URL`` (moto or LocalStack in the demo and tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
#: Page size of ListSecrets (the API maximum, AWS API reference ``MaxResults`` 1-100).
LIST_PAGE_SIZE = 100


# --------------------------------------------------------------------------------------------
# Errors


class AwsError(Exception):
    """An AWS failure turned into a sentence for the user.

    ``code`` is AWS's error code (``ResourceNotFoundException``, ...) or ours; ``message`` says
    what happened and how to fix it, and is safe to show (no values).
    """

    default = "Secrets Manager returned an unexpected error. Try again; if it persists, check the AWS Health Dashboard."

    def __init__(self, message: str | None = None, *, code: str = "", secret: str = "") -> None:
        self.message = message or self.default
        self.code = code
        self.secret = secret
        super().__init__(self.message)


class SecretNotFound(AwsError):
    default = "Secrets Manager can't find this secret. Check the name and region, or create it."


class NoValueYet(AwsError):
    default = (
        "This secret exists but has no value yet (it was created without one). "
        "Save a first version to give it a value."
    )


class AccessDenied(AwsError):
    default = "AWS denied the request: the portal's IAM role lacks a permission."


class DecryptionFailed(AwsError):
    default = (
        "AWS KMS could not decrypt this secret: the KMS key is disabled or the portal's role lacks "
        "kms:Decrypt on it. Enable the key or grant kms:Decrypt to the portal's role."
    )


class Throttled(AwsError):
    default = (
        "AWS is throttling requests to Secrets Manager (rate exceeded). Wait a few seconds and "
        "try again."
    )


class ScheduledForDeletion(AwsError):
    default = (
        "This secret is scheduled for deletion, so its value can't be read or changed. "
        "Restore it (RestoreSecret) first if it is still needed."
    )


class InvalidRequest(AwsError):
    default = "Secrets Manager refused the request for the secret's current state."


class LimitExceeded(AwsError):
    default = (
        "A Secrets Manager quota was reached for this secret (about 100 versions, or 20 staging "
        "labels). Wait for old versions to be pruned (after 24 hours) or close open change requests."
    )


class ServiceUnavailable(AwsError):
    default = (
        "Secrets Manager could not be reached. Check the network path to AWS (or the "
        "AWS_ENDPOINT_URL setting) and try again."
    )


def _action_for(operation: str) -> str:
    return f"secretsmanager:{operation}"


def translate(exc: Exception, *, operation: str, secret: str = "") -> AwsError:
    """Map a botocore exception raised by ``operation`` to our :class:`AwsError`."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        text = str(exc.response.get("Error", {}).get("Message", ""))
        where = f" ({secret})" if secret else ""
        if code == "ResourceNotFoundException":
            return SecretNotFound(code=code, secret=secret)
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            return AccessDenied(
                f"AWS denied {_action_for(operation)}{where}: the portal's IAM role lacks this "
                f"permission. Grant {_action_for(operation)} on the secret's ARN to the role.",
                code=code,
                secret=secret,
            )
        if code == "DecryptionFailure":
            return DecryptionFailed(code=code, secret=secret)
        if code in ("ThrottlingException", "Throttling", "TooManyRequestsException"):
            return Throttled(code=code, secret=secret)
        if code == "LimitExceededException":
            return LimitExceeded(code=code, secret=secret)
        if code == "InvalidRequestException" and "delet" in text.lower():
            return ScheduledForDeletion(code=code, secret=secret)
        if code == "InvalidRequestException":
            return InvalidRequest(
                "Secrets Manager refused the request for the secret's current state "
                "(for example a secret managed by another AWS service, or a version that "
                "moved). Reload the page and try again.",
                code=code,
                secret=secret,
            )
        if code in ("InternalServiceError", "ServiceUnavailable"):
            return ServiceUnavailable(code=code, secret=secret)
        return AwsError(
            f"Secrets Manager refused {operation}{where} with {code or 'an error'}. "
            "Check the request and the portal's IAM role.",
            code=code,
            secret=secret,
        )
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ReadTimeoutError,
    ):
        return ServiceUnavailable(code=type(exc).__name__, secret=secret)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AccessDenied(
            "The portal has no AWS credentials. Give it an IAM role (or set AWS credentials) "
            "with secretsmanager:ListSecrets, DescribeSecret and GetSecretValue.",
            code="NoCredentialsError",
            secret=secret,
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(code=type(exc).__name__, secret=secret)
    raise exc


# --------------------------------------------------------------------------------------------
# Client


_local = threading.local()
_config = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=20,
)


def client() -> SecretsManagerClient:
    """The Secrets Manager client of this thread, created on first use (never at import).

    boto3 reads region, credentials and ``AWS_ENDPOINT_URL`` from the environment.
    Retries use botocore's ``standard`` mode (the default ``legacy`` mode retries less).
    """
    c = getattr(_local, "client", None)
    if c is None:
        session = boto3.session.Session()
        c = session.client("secretsmanager", config=_config)
        _local.client = c
    return c


def reset_clients() -> None:
    """Forget this thread's client (tests that change the endpoint or inject errors)."""
    _local.client = None


# --------------------------------------------------------------------------------------------
# Reads


@dataclass(frozen=True)
class SecretMeta:
    """Listing metadata of one secret. Never holds a value."""

    name: str
    arn: str
    description: str = ""
    created: datetime | None = None
    last_changed: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    rotation_enabled: bool = False
    deleted_date: datetime | None = None
    primary_region: str = ""
    owning_service: str = ""
    current_version: str = ""

    @property
    def scheduled_for_deletion(self) -> bool:
        return self.deleted_date is not None

    def is_replica(self, region: str) -> bool:
        """A replica's ``PrimaryRegion`` names another region; replicas are read-only here."""
        return bool(self.primary_region) and self.primary_region != region


def _meta(entry: Any) -> SecretMeta:
    stages = entry.get("SecretVersionsToStages") or entry.get("VersionIdsToStages") or {}
    current = next((v for v, labels in stages.items() if CURRENT in labels), "")
    return SecretMeta(
        name=entry["Name"],
        arn=entry.get("ARN", ""),
        description=entry.get("Description", "") or "",
        created=entry.get("CreatedDate"),
        last_changed=entry.get("LastChangedDate"),
        tags={t["Key"]: t.get("Value", "") for t in entry.get("Tags", []) or []},
        rotation_enabled=bool(entry.get("RotationEnabled")),
        deleted_date=entry.get("DeletedDate"),
        primary_region=entry.get("PrimaryRegion", "") or "",
        owning_service=entry.get("OwningService", "") or "",
        current_version=current,
    )


def region() -> str:
    """The region the client talks to."""
    return str(client().meta.region_name or "")


def list_secrets_page(token: str | None = None) -> tuple[list[SecretMeta], str | None]:
    """One ``ListSecrets`` call: up to 100 secrets (scheduled for deletion included) and the
    ``NextToken`` of the next page, or ``None`` on the last page. Raises :class:`AwsError`.

    AWS may answer a page with no secrets but a token (API reference, ListSecrets), so callers
    loop on the token, never on an empty page.
    """
    kwargs: dict[str, Any] = {"MaxResults": LIST_PAGE_SIZE, "IncludePlannedDeletion": True}
    if token:
        kwargs["NextToken"] = token
    try:
        page = client().list_secrets(**kwargs)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation="ListSecrets") from None
    return [_meta(entry) for entry in page.get("SecretList", [])], page.get("NextToken") or None


def iter_secrets(*, on_page: Callable[[int], None] | None = None) -> Iterator[SecretMeta]:
    """Every secret in the account and region, including those scheduled for deletion.

    Pages through ``ListSecrets`` 100 at a time (ceil(N/100) calls). ``on_page(n)`` is called
    after each page with the count so far (for progress display). Raises :class:`AwsError`.
    """
    token: str | None = None
    count = 0
    while True:
        metas, token = list_secrets_page(token)
        count += len(metas)
        yield from metas
        if on_page:
            on_page(count)
        if not token:
            return


def list_unified_secrets(suffix: str) -> list[SecretMeta]:
    """Metadata of every secret whose name ends with ``suffix``, sorted by name.

    AWS's ``name`` filter matches prefixes only (API reference, ListSecrets ``Filters``), so the
    suffix is applied here. Raises :class:`AwsError`.
    """
    return sorted((m for m in iter_secrets() if m.name.endswith(suffix)), key=lambda m: m.name)


@dataclass(frozen=True)
class SecretValue:
    """One version's value. Exactly one of ``text`` and ``binary`` is set. Never log or store it."""

    name: str
    version_id: str
    stages: tuple[str, ...]
    text: str | None = None
    binary: bytes | None = None
    created: datetime | None = None

    def __repr__(self) -> str:  # keep values out of tracebacks and logs
        return f"SecretValue(name={self.name!r}, version_id={self.version_id!r})"


@dataclass(frozen=True)
class SecretDescription:
    """``DescribeSecret`` of one secret: metadata and version -> staging labels. No values."""

    meta: SecretMeta
    versions_to_stages: dict[str, list[str]]
    kms_key_id: str = ""
    rotation_rules: dict[str, Any] = field(default_factory=dict)
    replication_status: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_value(self) -> bool:
        """False for a secret created without a value (no version holds AWSCURRENT)."""
        return any(CURRENT in labels for labels in self.versions_to_stages.values())


def describe(name: str) -> SecretDescription:
    """``DescribeSecret``. Raises :class:`SecretNotFound` and other :class:`AwsError`."""
    try:
        d = client().describe_secret(SecretId=name)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation="DescribeSecret", secret=name) from None
    return SecretDescription(
        meta=_meta(d),
        versions_to_stages={k: list(v) for k, v in (d.get("VersionIdsToStages") or {}).items()},
        kms_key_id=d.get("KmsKeyId", "") or "",
        rotation_rules=dict(d.get("RotationRules") or {}),
        replication_status=[dict(r) for r in d.get("ReplicationStatus", []) or []],
    )


def _get_value(name: str, **kwargs: Any) -> SecretValue:
    try:
        r = client().get_secret_value(SecretId=name, **kwargs)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation="GetSecretValue", secret=name) from None
    return SecretValue(
        name=name,
        version_id=r["VersionId"],
        stages=tuple(r.get("VersionStages", [])),
        text=r.get("SecretString"),
        binary=r.get("SecretBinary"),
        created=r.get("CreatedDate"),
    )


def read_current(name: str) -> SecretValue:
    """The ``AWSCURRENT`` version's value and ``VersionId``.

    ``VersionStage`` is always given: moto returns a stale value after a label move without it,
    and IAM policies may condition on ``secretsmanager:VersionStage``. A secret created without a
    value answers ``ResourceNotFoundException`` like a missing secret: the two are told apart
    with ``DescribeSecret`` (:class:`NoValueYet` vs :class:`SecretNotFound`).
    """
    try:
        return _get_value(name, VersionStage=CURRENT)
    except SecretNotFound:
        description = describe(name)  # raises SecretNotFound when the secret itself is absent
        if not description.has_value:
            raise NoValueYet(code="ResourceNotFoundException", secret=name) from None
        raise


def read_version(name: str, version_id: str) -> SecretValue:
    """One version's value by ``VersionId``. Raises :class:`SecretNotFound` when it is gone."""
    return _get_value(name, VersionId=version_id)


def list_versions(name: str) -> list[dict[str, Any]]:
    """Every version (deprecated included) as AWS lists them: ``VersionId``, ``VersionStages``,
    ``CreatedDate``. Loops on ``NextToken`` (botocore has no paginator for this call)."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"SecretId": name, "IncludeDeprecated": True, "MaxResults": 100}
    try:
        while True:
            page = client().list_secret_version_ids(**kwargs)
            out.extend(dict(v) for v in page.get("Versions", []))
            token = page.get("NextToken")
            if not token:
                return out
            kwargs["NextToken"] = token
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation="ListSecretVersionIds", secret=name) from None


# --------------------------------------------------------------------------------------------
# Creation (used by the demo seed and, later, the admin "create secret" use case)


def create_secret(
    name: str, *, text: str | None, description: str = "", tags: dict[str, str] | None = None
) -> str:
    """``CreateSecret`` with an optional first value; returns the ARN. Raises :class:`AwsError`."""
    kwargs: dict[str, Any] = {"Name": name, "Description": description}
    if text is not None:
        kwargs["SecretString"] = text
    if tags:
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    try:
        return str(client().create_secret(**kwargs)["ARN"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation="CreateSecret", secret=name) from None
