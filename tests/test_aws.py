"""The Secrets Manager gateway against a moto server (and injected botocore errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from secrets_admin import aws

from .conftest import CallCounter


def inject_error(operation: str, code: str, message: str = "injected", status: int = 400) -> None:
    """Make the gateway's client answer ``operation`` with an AWS error, at the botocore level
    (moto cannot produce throttling or KMS errors). Returns no value: the hook short-circuits."""

    def handler(model: Any, params: Any, **kwargs: Any) -> Any:
        if model.name != operation:
            return None
        http = AWSResponse("https://example.invalid", status, {}, None)
        return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}

    aws.client().meta.events.register("before-call.secrets-manager", handler)


def test_list_pages_past_100_and_250_and_filters_by_suffix(
    make_secret: Any, calls: CallCounter
) -> None:
    for i in range(251):
        make_secret(f"repo{i:03d}-secrets", {"dev": {}})
    for i in range(30):
        make_secret(f"repo{i:03d}-stripe-dev", "{}")
    names = [m.name for m in aws.list_unified_secrets("-secrets")]
    assert len(names) == 251
    assert names == sorted(names)
    assert all(n.endswith("-secrets") for n in names)
    assert calls.count("ListSecrets") == 3  # ceil(281 / 100)


def test_list_includes_secrets_scheduled_for_deletion(make_secret: Any, sm: Any) -> None:
    make_secret("gone-secrets", {"dev": {}})
    sm.delete_secret(SecretId="gone-secrets", RecoveryWindowInDays=7)
    (meta,) = aws.list_unified_secrets("-secrets")
    assert meta.scheduled_for_deletion


def test_list_metadata_has_no_values(make_secret: Any) -> None:
    make_secret("a-secrets", {"dev": {"s": {"k": "CANARY-list-value"}}}, Description="d")
    (meta,) = aws.list_unified_secrets("-secrets")
    assert "CANARY" not in repr(meta)
    assert meta.description == "d" and meta.current_version


def test_read_current_passes_version_stage_and_returns_text(make_secret: Any) -> None:
    make_secret("a-secrets", {"dev": {}})
    value = aws.read_current("a-secrets")
    assert value.text == '{"dev": {}}'
    assert "AWSCURRENT" in value.stages
    assert "dev" not in repr(value)


def test_binary_secret_is_returned_as_bytes(make_secret: Any) -> None:
    make_secret("bin-secrets", binary=b"\x00\x01\x02")
    value = aws.read_current("bin-secrets")
    assert value.text is None and value.binary == b"\x00\x01\x02"


def test_secret_without_value_is_told_apart_from_a_missing_one(make_secret: Any) -> None:
    make_secret("empty-secrets")
    with pytest.raises(aws.NoValueYet, match="no value yet"):
        aws.read_current("empty-secrets")
    with pytest.raises(aws.SecretNotFound, match="can't find"):
        aws.read_current("absent-secrets")


def test_reading_a_secret_scheduled_for_deletion_says_so(make_secret: Any, sm: Any) -> None:
    make_secret("gone-secrets", {"dev": {}})
    sm.delete_secret(SecretId="gone-secrets", RecoveryWindowInDays=7)
    with pytest.raises(aws.ScheduledForDeletion, match="scheduled for deletion"):
        aws.read_current("gone-secrets")


@pytest.mark.parametrize(
    ("code", "error", "sentence"),
    [
        ("AccessDeniedException", aws.AccessDenied, "secretsmanager:GetSecretValue"),
        ("DecryptionFailure", aws.DecryptionFailed, "kms:Decrypt"),
        ("ThrottlingException", aws.Throttled, "try again"),
        ("LimitExceededException", aws.LimitExceeded, "100 versions"),
        ("InternalServiceError", aws.ServiceUnavailable, "could not be reached"),
        ("ResourceNotFoundException", aws.SecretNotFound, "can't find"),
        ("InvalidRequestException", aws.InvalidRequest, "current state"),
        ("SomethingNewException", aws.AwsError, "SomethingNewException"),
    ],
)
def test_each_aws_error_becomes_a_sentence_with_cause_and_fix(
    make_secret: Any, code: str, error: type, sentence: str
) -> None:
    make_secret("a-secrets", {"dev": {}})
    inject_error("GetSecretValue", code, status=500 if code == "InternalServiceError" else 400)
    with pytest.raises(error) as info:
        aws.read_version("a-secrets", "0" * 36)
    assert sentence in info.value.message
    assert info.value.code == code


def test_access_denied_on_listing_names_the_missing_action() -> None:
    inject_error("ListSecrets", "AccessDeniedException")
    with pytest.raises(aws.AccessDenied, match="secretsmanager:ListSecrets"):
        aws.list_unified_secrets("-secrets")


def test_unreachable_endpoint_is_a_clear_message(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws.reset_clients()
    with pytest.raises(aws.ServiceUnavailable, match="could not be reached"):
        aws.describe("a-secrets")


def test_one_client_per_thread_made_lazily() -> None:
    import threading

    aws.reset_clients()
    first = aws.client()
    assert aws.client() is first
    other: list[Any] = []
    t = threading.Thread(target=lambda: other.append(aws.client()))
    t.start()
    t.join()
    assert other[0] is not first
    assert first.meta.config.retries["mode"] == "standard"


def test_versions_are_listed_with_labels(make_secret: Any) -> None:
    make_secret("a-secrets", json.dumps({"dev": {}}))
    versions = aws.list_versions("a-secrets")
    assert len(versions) == 1 and "AWSCURRENT" in versions[0]["VersionStages"]
