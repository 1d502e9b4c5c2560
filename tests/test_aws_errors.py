"""Every Secrets Manager call of the gateway turns botocore errors into the same sentences, with
the botocore exception never chained (its text can quote request parameters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from secrets_admin import aws

from .test_aws import inject_error

NAME = "a-secrets"
TOKEN = "t" * 40

CALLS: list[tuple[str, Callable[[], object]]] = [
    ("ListSecrets", lambda: aws.list_secrets_page()),
    ("DescribeSecret", lambda: aws.describe(NAME)),
    ("GetSecretValue", lambda: aws.read_version(NAME, "0" * 36)),
    ("ListSecretVersionIds", lambda: aws.list_versions(NAME)),
    ("PutSecretValue", lambda: aws.stage_version(NAME, text="{}", token=TOKEN)),
    ("CreateSecret", lambda: aws.create("b-secrets", text="{}")),
    ("RestoreSecret", lambda: aws.restore_deleted(NAME)),
    ("DeleteSecret", lambda: aws.schedule_deletion(NAME, recovery_days=7)),
]


@pytest.mark.parametrize(("operation", "call"), CALLS, ids=[op for op, _ in CALLS])
def test_every_call_names_the_permission_it_lacks(
    make_secret: Any, operation: str, call: Callable[[], object]
) -> None:
    make_secret(NAME, {"dev": {}})
    inject_error(operation, "AccessDeniedException", message="denied for CANARY-param")
    with pytest.raises(aws.AccessDenied) as denied:
        call()
    assert f"secretsmanager:{operation}" in denied.value.message
    assert denied.value.code == "AccessDeniedException"
    assert denied.value.__cause__ is None and denied.value.__suppress_context__
    assert "CANARY" not in str(denied.value)


@pytest.mark.parametrize(("operation", "call"), CALLS, ids=[op for op, _ in CALLS])
def test_every_call_reports_throttling_as_a_sentence(
    make_secret: Any, operation: str, call: Callable[[], object]
) -> None:
    make_secret(NAME, {"dev": {}})
    inject_error(operation, "ThrottlingException")
    with pytest.raises(aws.Throttled, match="try again"):
        call()


def test_a_token_taken_by_other_content_is_token_reused(make_secret: Any) -> None:
    make_secret(NAME, {"dev": {}})
    inject_error("PutSecretValue", "ResourceExistsException")
    with pytest.raises(aws.TokenReused, match="already submitted"):
        aws.stage_version(NAME, text="{}", token=TOKEN)


def test_creating_an_existing_name_says_to_open_it(make_secret: Any) -> None:
    make_secret(NAME, {"dev": {}})
    with pytest.raises(aws.AwsError, match=f"A secret named {NAME} already exists") as exists:
        aws.create(NAME, text="{}")
    assert exists.value.code == "ResourceExistsException"
