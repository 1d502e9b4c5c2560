"""The errors of the AWS gateway (``aws.py``): every AWS failure, and every refusal of the
compare-and-swap write protocol, as an :class:`AwsError` whose ``message`` is one sentence naming
the cause and the fix (the standard's "Troubleshooting" section is the model). Messages never
contain a secret value.

``aws.translate`` maps a botocore exception to one of these (and ``aws.aws_call`` applies it
around every call); callers catch them by the gateway's name (``aws.SecretNotFound``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus

from . import errors
from .documents import MAX_SECRET_BYTES

# --------------------------------------------------------------------------------------------
# AWS failures


class AwsError(errors.UpstreamError):
    """An AWS failure turned into a sentence for the user.

    ``code`` is AWS's error code (``ResourceNotFoundException``, ...) or ours; ``message`` says
    what happened and how to fix it, and is safe to show (no values). Without a message, the
    class's ``default`` sentence is used.
    """

    default = "Secrets Manager returned an unexpected error. Try again; if it persists, check the AWS Health Dashboard."

    def __init__(self, message: str | None = None, *, code: str = "", secret: str = "") -> None:
        super().__init__(message or self.default)
        self.code = code
        self.secret = secret


class SecretNotFound(AwsError, status=HTTPStatus.NOT_FOUND):
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


class BadParameter(AwsError, status=HTTPStatus.BAD_REQUEST):
    default = (
        "The request named a version or parameter that AWS does not accept (for example a "
        "malformed version id). Reload the page and try again."
    )


#: Per-call exceptions to ``aws.translate``: AWS error code -> the :class:`AwsError` to raise
#: (called with the code).
CodeErrors = Mapping[str, Callable[[str], AwsError]]


# --------------------------------------------------------------------------------------------
# Refusals of the write protocol (raised by the gateway's write calls)


class SecretTooLarge(AwsError, status=HTTPStatus.BAD_REQUEST):
    """The serialised document is over AWS's 65,536-byte limit (raised before any AWS call)."""

    def __init__(self, size: int, *, secret: str = "") -> None:
        over = size - MAX_SECRET_BYTES
        super().__init__(
            f"The secret would be {size:,} bytes of UTF-8, {over:,} bytes over AWS's limit of "
            f"{MAX_SECRET_BYTES:,} bytes per secret value. Remove or shorten values (or move a "
            "large service to its own secret) and save again. Nothing was saved.",
            code="SecretTooLarge",
            secret=secret,
        )
        self.size = size
        self.over = over


class CurrentMoved(AwsError):
    """``AWSCURRENT`` is no longer on the base version: someone else saved in between."""

    def __init__(self, *, current_version: str, secret: str = "") -> None:
        super().__init__(
            "Someone else saved this secret after you opened it, so AWSCURRENT moved.",
            code="CurrentMoved",
            secret=secret,
        )
        self.current_version = current_version


class AmbiguousCurrent(AwsError, status=HTTPStatus.CONFLICT):
    """``AWSCURRENT`` is on more than one version, which AWS itself never allows (a staging label
    is on at most one version; ``UpdateSecretVersionStage``). Seen in moto after an out-of-band
    plain ``PutSecretValue``. Writing would rebase onto a guess, so writes are refused (409: the
    secret's state, not AWS, is at fault)."""

    def __init__(self, *, versions: Sequence[str], secret: str = "") -> None:
        listed = ", ".join(sorted(versions))
        super().__init__(
            f"Secrets Manager reports AWSCURRENT on {len(versions)} versions of this secret "
            f"({listed}), a state AWS itself never allows, so the portal can't tell which value "
            "is current and refuses to write. Ask an admin to move AWSCURRENT onto the right "
            "version (UpdateSecretVersionStage) and try again. Nothing was saved.",
            code="AmbiguousCurrent",
            secret=secret,
        )
        self.versions = tuple(sorted(versions))


class TokenReused(AwsError):
    default = (
        "This change was already submitted with different content (its request token is taken "
        "by another version). Open the editor again and make the change anew."
    )


class SaveOutcomeUnknown(AwsError):
    default = (
        "Secrets Manager did not confirm whether the save landed, and could not be asked. "
        "Open the secret's history to see whether your version became current before trying again."
    )
