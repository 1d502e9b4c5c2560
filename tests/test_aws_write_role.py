"""Writes as the signed-in person: STS AssumeRole with SourceIdentity (against moto's STS),
and the version lookup that settles open attempts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from secrets_admin import aws

ROLE = "arn:aws:iam::123456789012:role/portal-writer"


class StsCalls:
    """AssumeRole requests and the access keys STS handed out (botocore hooks, no patching)."""

    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []
        self.keys: list[str] = []
        events = aws.sts_client().meta.events
        events.register("provide-client-params.sts.AssumeRole", self.on_params)
        events.register("after-call.sts.AssumeRole", self.on_result)

    def on_params(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.params.append(dict(params))

    def on_result(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        self.keys.append(parsed["Credentials"]["AccessKeyId"])


def signing_keys(client: Any) -> list[str]:
    """Collects the access key id each request of ``client`` is signed with."""
    seen: list[str] = []

    def on_send(request: Any, **kwargs: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        seen.append(re.search(r"Credential=([^/]+)/", auth).group(1))  # type: ignore[union-attr]

    client.meta.events.register("before-send.secrets-manager", on_send)
    return seen


def test_without_a_write_role_writes_use_the_portals_own_client(settings: Any) -> None:
    settings.PORTAL_WRITE_ROLE_ARN = ""
    assert aws.write_client("erin-engineer") is aws.client()


def test_write_client_assumes_the_role_with_the_person_as_source_identity(
    settings: Any, make_secret: Any
) -> None:
    settings.PORTAL_WRITE_ROLE_ARN = ROLE
    make_secret("a-secrets", {"dev": {}})
    sts = StsCalls()
    client = aws.write_client("erin.engineer@example.com")
    assert sts.params == [
        {
            "RoleArn": ROLE,
            "RoleSessionName": "erin.engineer@example.com",
            "SourceIdentity": "erin.engineer@example.com",
            "DurationSeconds": 3600,
        }
    ]
    keys = signing_keys(client)
    client.describe_secret(SecretId="a-secrets")
    assert keys == sts.keys  # signed with the assumed role's credentials
    assert keys[0] != "testing"  # not the portal's own


def test_write_clients_are_cached_per_identity_until_near_expiry(
    settings: Any, monkeypatch: Any
) -> None:
    settings.PORTAL_WRITE_ROLE_ARN = ROLE
    sts = StsCalls()
    first = aws.write_client("erin-engineer")
    assert aws.write_client("erin-engineer") is first
    other = aws.write_client("alex-approver")
    assert other is not first
    assert [p["SourceIdentity"] for p in sts.params] == ["erin-engineer", "alex-approver"]
    later = aws._utcnow() + timedelta(minutes=56)  # within 5 minutes of the 1 h expiry
    monkeypatch.setattr(aws, "_utcnow", lambda: later)
    assert aws.write_client("erin-engineer") is not first
    assert len(sts.params) == 3


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("ada", "ada"),
        ("ada.lovelace+ops@example.com", "ada.lovelace+ops@example.com"),
        ("José Núñez", re.compile(r"Jose_Nunez-[0-9a-f]{8}")),
        ("x", re.compile(r"x-[0-9a-f]{8}")),
        ("a" * 80, re.compile(r"a{55}-[0-9a-f]{8}")),
        ("李", re.compile(r"-[0-9a-f]{8}")),
    ],
)
def test_usernames_are_made_acceptable_to_sts(username: str, expected: Any) -> None:
    identity = aws.source_identity_for(username)
    assert re.fullmatch(r"[A-Za-z0-9_+=,.@-]{2,64}", identity)
    if isinstance(expected, str):
        assert identity == expected
    else:
        assert expected.fullmatch(identity)


def test_names_that_sanitise_alike_stay_apart() -> None:
    assert aws.source_identity_for("ann smith") != aws.source_identity_for("ann_smith")
    assert aws.source_identity_for("ann smith") != aws.source_identity_for("ann/smith")


def test_version_stages_come_from_describe_secret(make_secret: Any, sm: Any) -> None:
    make_secret("a-secrets", {"dev": {}})
    first = sm.get_secret_value(SecretId="a-secrets", VersionStage="AWSCURRENT")["VersionId"]
    token = "s" * 32
    sm.put_secret_value(
        SecretId="a-secrets",
        SecretString='{"dev": {"s": {}}}',
        ClientRequestToken=token,
        VersionStages=["PORTAL_STAGED"],
    )
    assert aws.version_stages("a-secrets", token) == ["PORTAL_STAGED"]
    sm.update_secret_version_stage(
        SecretId="a-secrets",
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=first,
    )
    assert set(aws.version_stages("a-secrets", token) or []) == {"PORTAL_STAGED", "AWSCURRENT"}
    assert aws.version_stages("a-secrets", first) == ["AWSPREVIOUS"]
    assert aws.version_stages("a-secrets", "n" * 32) is None
    with pytest.raises(aws.SecretNotFound):
        aws.version_stages("missing-secrets", token)
