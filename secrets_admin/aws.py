"""The gateway to AWS Secrets Manager and STS: the only module that imports boto3 or botocore,
and the only one that calls them (``tests/test_iam_policy.py`` reads the calls from this file).

* the clients: the portal's own (reads) and, with ``PORTAL_WRITE_ROLE_ARN``, one per signed-in
  person for writes (STS ``AssumeRole`` with ``SourceIdentity``);
* the reads: list, describe, read a version, list versions, who the portal is;
* the writes: the compare-and-swap steps (stage, promote, drop the staging label), create,
  restore, schedule deletion.

Every AWS error leaves this module through :func:`translate` (applied by :func:`aws_call`
around every call) as an :class:`AwsError` subclass whose ``message`` is one sentence naming the
cause and the fix; the family lives in ``aws_errors.py`` and is re-exported here, since callers
catch it by the gateway's name (``aws.SecretNotFound``). Messages never contain a secret value.

Configuration comes from boto3's own settings: ``AWS_REGION``/``AWS_DEFAULT_REGION``, the default
credential chain, and ``AWS_ENDPOINT_URL`` (moto or LocalStack in the demo and tests).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions
from django.conf import settings

# The error family, re-exported: the gateway's callers catch it as aws.<name>.
from .aws_errors import AccessDenied as AccessDenied
from .aws_errors import AmbiguousCurrent as AmbiguousCurrent
from .aws_errors import AwsError as AwsError
from .aws_errors import BadParameter as BadParameter
from .aws_errors import CodeErrors
from .aws_errors import CurrentMoved as CurrentMoved
from .aws_errors import DecryptionFailed as DecryptionFailed
from .aws_errors import InvalidRequest as InvalidRequest
from .aws_errors import LimitExceeded as LimitExceeded
from .aws_errors import NoValueYet as NoValueYet
from .aws_errors import SaveOutcomeUnknown as SaveOutcomeUnknown
from .aws_errors import ScheduledForDeletion as ScheduledForDeletion
from .aws_errors import SecretNotFound as SecretNotFound
from .aws_errors import SecretTooLarge as SecretTooLarge
from .aws_errors import ServiceUnavailable as ServiceUnavailable
from .aws_errors import Throttled as Throttled
from .aws_errors import TokenReused as TokenReused
from .documents import MAX_SECRET_BYTES
from .observability.logs import count_aws_calls

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sts import STSClient

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
PENDING = "AWSPENDING"
#: Page size of ListSecrets (the API maximum, AWS API reference ``MaxResults`` 1-100).
LIST_PAGE_SIZE = 100


# --------------------------------------------------------------------------------------------
# Errors: one path from a botocore exception to an AwsError


def translate(
    exc: Exception,
    *,
    operation: str,
    secret: str = "",
    service: str = "secretsmanager",
    codes: CodeErrors | None = None,
) -> AwsError:
    """Map a botocore exception raised by ``service``'s ``operation`` to our :class:`AwsError`.

    A ``ClientError`` whose code is in ``codes`` becomes what ``codes[code](code)`` returns (a
    call's own reading of that code); other codes, and any ``BotoCoreError``, map as below.
    An :class:`AwsError` is returned as it is; any other exception is re-raised.
    """
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        text = str(exc.response.get("Error", {}).get("Message", ""))
        where = f" ({secret})" if secret else ""
        if codes and code in codes:
            return codes[code](code)
        if code == "ResourceNotFoundException":
            return SecretNotFound(code=code, secret=secret)
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            return AccessDenied(
                f"AWS denied {service}:{operation}{where}: the portal's IAM role lacks this "
                f"permission. Grant {service}:{operation} on the secret's ARN to the role.",
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
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        # botocore's own message can quote the parameter's value: never pass it on.
        return BadParameter(code="ParamValidationError", secret=secret)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(code=type(exc).__name__, secret=secret)
    raise exc


@contextmanager
def aws_call(
    operation: str,
    *,
    secret: str = "",
    service: str = "secretsmanager",
    codes: CodeErrors | None = None,
) -> Iterator[None]:
    """Run the AWS call in the ``with`` block; a botocore error leaves it as an :class:`AwsError`.

    A ``ClientError`` or ``BotoCoreError`` raises :func:`translate` ``(exc, operation=...,
    secret=..., service=..., codes=...)``. The botocore exception is never chained
    (``from None``): its text can quote request parameters. Other exceptions pass through
    unchanged.
    """
    try:
        yield
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(
            exc, operation=operation, secret=secret, service=service, codes=codes
        ) from None


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
        c = count_aws_calls(session.client("secretsmanager", config=_config))
        _local.client = c
    return c


def sts_client() -> STSClient:
    """The STS client of this thread, created on first use (same settings as :func:`client`)."""
    c = getattr(_local, "sts", None)
    if c is None:
        c = count_aws_calls(boto3.session.Session().client("sts", config=_config))
        _local.sts = c
    return c


def reset_clients() -> None:
    """Forget this thread's clients (tests that change the endpoint or inject errors)."""
    _local.client = None
    _local.sts = None
    _local.write_clients = {}


# --------------------------------------------------------------------------------------------
# Writing as the signed-in person (CloudTrail shows them as the session's ``sourceIdentity``)

#: STS ``SourceIdentity`` and ``RoleSessionName``: 2-64 of these characters (STS API reference).
_STS_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
_STS_BAD_CHAR = re.compile(r"[^A-Za-z0-9_+=,.@-]")
#: Assumed credentials are replaced this long before they expire.
_REFRESH_MARGIN = timedelta(minutes=5)


def source_identity_for(username: str) -> str:
    """``username`` as STS accepts it for ``SourceIdentity`` and ``RoleSessionName``.

    A name that already fits (2-64 of ``A-Za-z0-9_+=,.@-``, so most usernames and e-mail
    addresses) is kept as it is. Otherwise accents are dropped, other characters become ``_``,
    and 8 hex digits of the name's SHA-256 are appended (after cutting to fit), so that two
    people whose names sanitise alike still differ in CloudTrail.
    """
    if _STS_NAME.fullmatch(username):
        return username
    ascii_name = unicodedata.normalize("NFKD", username).encode("ascii", "ignore").decode()
    cleaned = _STS_BAD_CHAR.sub("_", ascii_name)
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    return f"{cleaned[:55]}-{digest}"


@dataclass
class _AssumedClient:
    client: SecretsManagerClient
    expires: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


def write_client(source_identity: str) -> SecretsManagerClient:
    """The Secrets Manager client to make one person's writes with.

    When ``PORTAL_WRITE_ROLE_ARN`` is empty this is :func:`client` (the portal's own role,
    which CloudTrail then names alone). When it is set, the portal calls STS ``AssumeRole``
    on that role with ``SourceIdentity`` and ``RoleSessionName`` both set to
    :func:`source_identity_for` ``(source_identity)`` and ``DurationSeconds`` =
    ``PORTAL_WRITE_ROLE_SECONDS``, and returns a client signed with the temporary credentials:
    CloudTrail then records the person as ``sourceIdentity`` on every call, and AWS carries it
    into any role chained from there (IAM User Guide, "Monitor and control actions taken with
    assumed roles").

    ``source_identity`` is the signed-in person's username. Clients are cached per thread and
    identity until 5 minutes before their credentials expire, so a person's writes cost one
    ``AssumeRole`` per session length. The role's trust policy must allow the portal's role
    ``sts:AssumeRole`` and ``sts:SetSourceIdentity``; without them this raises
    :class:`AccessDenied` saying so (other STS failures: :class:`AwsError`). Use it for writes
    only: reads stay on :func:`client`.
    """
    role_arn = settings.PORTAL_WRITE_ROLE_ARN
    if not role_arn:
        return client()
    identity = source_identity_for(source_identity)
    cache: dict[tuple[str, str], _AssumedClient] = getattr(_local, "write_clients", None) or {}
    _local.write_clients = cache
    cached = cache.get((role_arn, identity))
    if cached is not None and cached.expires - _REFRESH_MARGIN > _utcnow():
        return cached.client

    def trust_refused(code: str) -> AwsError:
        return AccessDenied(
            f"The portal could not assume its write role {role_arn} for {identity}: the "
            "role's trust policy must allow the portal's role sts:AssumeRole and "
            "sts:SetSourceIdentity.",
            code=code,
        )

    codes = dict.fromkeys(("AccessDenied", "AccessDeniedException"), trust_refused)
    with aws_call("AssumeRole", codes=codes):
        response = sts_client().assume_role(
            RoleArn=role_arn,
            RoleSessionName=identity,
            SourceIdentity=identity,
            DurationSeconds=settings.PORTAL_WRITE_ROLE_SECONDS,
        )
    credentials = response["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region(),
    )
    assumed = count_aws_calls(session.client("secretsmanager", config=_config))
    cache[(role_arn, identity)] = _AssumedClient(assumed, credentials["Expiration"])
    return assumed


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
    # For the hygiene index: ListSecrets' NextRotationDate, and versions labelled AWSPENDING but
    # not AWSCURRENT (a rotation that did not finish).
    next_rotation: datetime | None = None
    pending_versions: tuple[str, ...] = ()

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
        next_rotation=entry.get("NextRotationDate"),
        pending_versions=tuple(
            v for v, labels in stages.items() if PENDING in labels and CURRENT not in labels
        ),
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
    with aws_call("ListSecrets"):
        page = client().list_secrets(**kwargs)
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
class CallerIdentity:
    """Who the portal's credentials are: the AWS account id and the caller's ARN."""

    account: str
    arn: str

    @property
    def partition(self) -> str:
        """``aws``, ``aws-cn`` or ``aws-us-gov``: the second field of the caller's ARN."""
        parts = self.arn.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else "aws"


def caller_identity() -> CallerIdentity:
    """STS ``GetCallerIdentity``: the account the portal runs in (for IAM policy snippets).

    The call needs no IAM permission (AWS STS API reference). Raises :class:`AwsError` when STS
    cannot be reached or the portal has no credentials.
    """
    with aws_call("GetCallerIdentity", service="sts"):
        r = sts_client().get_caller_identity()
    return CallerIdentity(account=str(r.get("Account", "")), arn=str(r.get("Arn", "")))


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
    with aws_call("DescribeSecret", secret=name):
        d = client().describe_secret(SecretId=name)
    return SecretDescription(
        meta=_meta(d),
        versions_to_stages={k: list(v) for k, v in (d.get("VersionIdsToStages") or {}).items()},
        kms_key_id=d.get("KmsKeyId", "") or "",
        rotation_rules=dict(d.get("RotationRules") or {}),
        replication_status=[dict(r) for r in d.get("ReplicationStatus", []) or []],
    )


def _get_value(name: str, **kwargs: Any) -> SecretValue:
    with aws_call("GetSecretValue", secret=name):
        r = client().get_secret_value(SecretId=name, **kwargs)
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


def version_stages(name: str, version_id: str) -> list[str] | None:
    """The staging labels of one version (``DescribeSecret``'s ``VersionIdsToStages``), or
    ``None`` when the secret lists no such version: it was never created, or it lost its last
    label and AWS treats it as deprecated (AWS lists labelled versions only; moto lists all).
    Used to settle an attempt whose outcome was not recorded. Raises :class:`SecretNotFound`
    and other :class:`AwsError`."""
    return describe(name).versions_to_stages.get(version_id)


def list_versions(name: str) -> list[dict[str, Any]]:
    """Every version (deprecated included) as AWS lists them: ``VersionId``, ``VersionStages``,
    ``CreatedDate``. Loops on ``NextToken`` (botocore has no paginator for this call)."""
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"SecretId": name, "IncludeDeprecated": True, "MaxResults": 100}
    with aws_call("ListSecretVersionIds", secret=name):
        while True:
            page = client().list_secret_version_ids(**kwargs)
            out.extend(dict(v) for v in page.get("Versions", []))
            token = page.get("NextToken")
            if not token:
                return out
            kwargs["NextToken"] = token


# --------------------------------------------------------------------------------------------
# Writes: the compare-and-swap protocol (stage, swap ``AWSCURRENT``, drop the label), and creation
#
# Every write takes its client from :func:`_write_client`, so the client that acts as the
# signed-in person (STS ``AssumeRole`` with ``SourceIdentity``) plugs in at one place.
#
# One save costs ``PutSecretValue`` + ``UpdateSecretVersionStage`` x 2 (stage, swap, drop the
# temporary label); ``DescribeSecret`` is added only when the swap fails (ambiguous failure).
# Never a plain ``PutSecretValue`` (without ``VersionStages``): AWSCURRENT moves only by the swap,
# and moto (the tests' Secrets Manager) mislabels versions when the two are mixed.

#: The temporary label of a staged version. One shared label, not one per change:
#: a later staging moves it (AWS removes a label from its previous version), so a crash between
#: staging and clean-up can never pile up labels against the quota of 20 per secret (Secrets
#: Manager quotas, "staging labels attached across all versions of a secret"); the next save
#: moves and then drops it.
STAGING_LABEL = "PORTAL_STAGED"
#: ``ClientRequestToken`` length bounds (API model ``ClientRequestTokenType``).
TOKEN_MIN, TOKEN_MAX = 32, 64

log = logging.getLogger(__name__)


def refuse_ambiguous_current(name: str, description: SecretDescription) -> None:
    """Raise :class:`AmbiguousCurrent` when ``AWSCURRENT`` is on more than one version."""
    holders = [v for v, labels in description.versions_to_stages.items() if CURRENT in labels]
    if len(holders) > 1:
        raise AmbiguousCurrent(versions=holders, secret=name)


def _write_client(source_identity: str = "") -> SecretsManagerClient:
    """The client every write uses: :func:`write_client` for the person acting (their username),
    so that with ``PORTAL_WRITE_ROLE_ARN`` set CloudTrail names them (IAM User Guide, "Monitor and
    control actions taken with assumed roles"); the
    process's own client when no person is named (management commands, the demo seed)."""
    return write_client(source_identity) if source_identity else client()


def check_size(text: str, *, secret: str = "") -> int:
    """The UTF-8 size of ``text``; raises :class:`SecretTooLarge` above 65,536 bytes.

    AWS's limit (quota L-2F24C883), which moto does not enforce, so it is checked here, before
    any call.
    """
    size = len(text.encode("utf-8"))
    if size > MAX_SECRET_BYTES:
        raise SecretTooLarge(size, secret=secret)
    return size


def stage_version(
    name: str, *, text: str, token: str, source_identity: str = "", label: str = ""
) -> str:
    """Write ``text`` as a new version carrying only ``label`` (default :data:`STAGING_LABEL`;
    a change request's own ``CR-<id>``); return its ``VersionId``.

    ``AWSCURRENT`` does not move (``VersionStages`` is given). ``token`` becomes the
    ``ClientRequestToken`` and so the ``VersionId``: the same token with the same text is a no-op
    that returns the existing version (a double submit creates one version); the same token with
    other text raises :class:`TokenReused`. The size is checked before the call
    (:class:`SecretTooLarge`). Other failures raise :class:`AwsError`
    (``LimitExceeded`` when the secret has too many versions).
    """
    check_size(text, secret=name)
    if not TOKEN_MIN <= len(token) <= TOKEN_MAX:
        raise ValueError("ClientRequestToken must be 32 to 64 characters")
    codes: CodeErrors = {
        "ResourceExistsException": lambda code: TokenReused(code=code, secret=name),
        "LimitExceededException": lambda code: LimitExceeded(
            "Secrets Manager refused a new version of this secret: it keeps about 100 "
            "versions and deletes unlabelled ones only after 24 hours. Wait for older versions "
            "to age out, and batch edits into fewer saves. Nothing was saved.",
            code=code,
            secret=name,
        ),
    }
    with aws_call("PutSecretValue", secret=name, codes=codes):
        r = _write_client(source_identity).put_secret_value(
            SecretId=name,
            ClientRequestToken=token,
            SecretString=text,
            VersionStages=[label or STAGING_LABEL],
        )
    return str(r["VersionId"])


#: Staging labels AWS allows on one secret, across all its versions (Secrets Manager quotas);
#: moto does not enforce it, so :func:`labels_in_use` lets the portal check before staging.
LABEL_QUOTA = 20


def labels_in_use(description: SecretDescription) -> set[str]:
    """Every staging label attached to any version of the described secret."""
    return {label for labels in description.versions_to_stages.values() for label in labels}


def current_of(description: SecretDescription) -> str:
    """The ``VersionId`` holding ``AWSCURRENT`` in a description (``""`` when none).
    Raises :class:`AmbiguousCurrent` when more than one version holds it."""
    refuse_ambiguous_current(description.meta.name, description)
    return _current_of(description)


def _current_of(description: SecretDescription) -> str:
    return next(
        (v for v, labels in description.versions_to_stages.items() if CURRENT in labels), ""
    )


def promote(name: str, *, version_id: str, base_version_id: str, source_identity: str = "") -> bool:
    """The swap: move ``AWSCURRENT`` to ``version_id`` only if it is still on ``base_version_id``.

    ``UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=version_id,
    RemoveFromVersionId=base_version_id)`` (AWS moves ``AWSPREVIOUS`` itself). Any failure of
    that call is ambiguous (a retried call that already landed, a conflict, an unknown wrong-id
    error code), so one ``DescribeSecret`` decides:

    * ``AWSCURRENT`` on ``version_id``: success (returns ``True``: confirmed after a failure);
    * on another version than the base: raises :class:`CurrentMoved` (a conflict);
    * still on the base: the failure was real, raises its :class:`AwsError`;
    * DescribeSecret fails too: raises :class:`SaveOutcomeUnknown`.

    Returns ``False`` on plain success.
    """
    writer = _write_client(source_identity)  # its own failures (AssumeRole) are not ambiguous
    try:
        with aws_call("UpdateSecretVersionStage", secret=name):
            writer.update_secret_version_stage(
                SecretId=name,
                VersionStage=CURRENT,
                MoveToVersionId=version_id,
                RemoveFromVersionId=base_version_id,
            )
        return False
    except AwsError as exc:
        error = exc
    try:
        current = _current_of(describe(name))
    except AwsError:
        raise SaveOutcomeUnknown(code=error.code, secret=name) from None
    if current == version_id:
        return True
    if current and current != base_version_id:
        raise CurrentMoved(current_version=current, secret=name)
    raise error


def drop_staging_label(
    name: str, *, version_id: str, source_identity: str = "", label: str = ""
) -> bool:
    """Remove ``label`` (default :data:`STAGING_LABEL`) from ``version_id``; return whether it was
    removed.

    Not finding the label there is normal (a later staging moved it, or this is a repeat) and
    returns ``False``. Other failures are logged and return ``False``: a label left behind is moved
    and dropped by the next save, so it never blocks one.
    """
    writer = _write_client(source_identity)  # its own failures (AssumeRole) are raised
    try:
        with aws_call("UpdateSecretVersionStage", secret=name):
            writer.update_secret_version_stage(
                SecretId=name, VersionStage=label or STAGING_LABEL, RemoveFromVersionId=version_id
            )
        return True
    except AwsError as exc:  # .code: AWS's error code, or the botocore exception's class name
        if exc.code != "InvalidParameterException":
            log.warning("could not drop the staging label of %s (%s)", name, exc.code)
        return False


@dataclass(frozen=True)
class CreatedSecret:
    arn: str
    version_id: str


def create(
    name: str,
    *,
    text: str | None,
    description: str = "",
    tags: dict[str, str] | None = None,
    kms_key_id: str = "",
    source_identity: str = "",
) -> CreatedSecret:
    """``CreateSecret`` with an optional first value (which becomes ``AWSCURRENT``).

    The size is checked before the call. Raises :class:`AwsError`; an existing name raises one
    with ``code == "ResourceExistsException"``, a name pending deletion (on AWS) an
    ``InvalidRequestException``-coded one.
    """
    kwargs: dict[str, Any] = {"Name": name, "Description": description}
    if text is not None:
        check_size(text, secret=name)
        kwargs["SecretString"] = text
    if tags:
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if kms_key_id:
        kwargs["KmsKeyId"] = kms_key_id
    codes: CodeErrors = {
        "ResourceExistsException": lambda code: AwsError(
            f"A secret named {name} already exists. Open it instead, or pick another name.",
            code=code,
            secret=name,
        )
    }
    with aws_call("CreateSecret", secret=name, codes=codes):
        r = _write_client(source_identity).create_secret(**kwargs)
    return CreatedSecret(arn=str(r["ARN"]), version_id=str(r.get("VersionId", "")))


def create_secret(
    name: str, *, text: str | None, description: str = "", tags: dict[str, str] | None = None
) -> str:
    """``CreateSecret`` with an optional first value; returns the ARN. Raises :class:`AwsError`."""
    return create(name, text=text, description=description, tags=tags).arn


def restore_deleted(name: str, *, source_identity: str = "") -> None:
    """``RestoreSecret``: cancel a scheduled deletion. Raises :class:`AwsError`."""
    with aws_call("RestoreSecret", secret=name):
        _write_client(source_identity).restore_secret(SecretId=name)


#: The recovery window ``DeleteSecret`` accepts (``RecoveryWindowInDays``, API reference).
RECOVERY_WINDOW_DAYS = (7, 30)


def schedule_deletion(name: str, *, recovery_days: int, source_identity: str = "") -> datetime:
    """``DeleteSecret(RecoveryWindowInDays=recovery_days)``: the secret is deleted after the
    window and can be restored (``RestoreSecret``) until then. Never ``ForceDeleteWithoutRecovery``.

    Returns the deletion date. Raises ``ValueError`` outside 7-30 days, :class:`AwsError`.
    """
    low, high = RECOVERY_WINDOW_DAYS
    if not low <= recovery_days <= high:
        raise ValueError(f"the recovery window must be {low} to {high} days")
    with aws_call("DeleteSecret", secret=name):
        r = _write_client(source_identity).delete_secret(
            SecretId=name, RecoveryWindowInDays=recovery_days
        )
    return r["DeletionDate"]
