"""The test and demo moto server answers stage-less reads like AWS (secrets_admin/moto_fix.py).

Real Secrets Manager returns the ``AWSCURRENT`` version to a ``GetSecretValue`` without
``VersionId``/``VersionStage``; unpatched moto returned the version current before the portal's
last ``UpdateSecretVersionStage``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from secrets_admin import aws

from .conftest import STANDARD_DOC
from .portal_flows import save_cells

pytestmark = pytest.mark.django_db

NAME = "shop-secrets"


def current_holders(sm: Any) -> list[str]:
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    return [v for v, labels in stages.items() if "AWSCURRENT" in labels]


def test_stage_less_read_returns_awscurrent_after_a_portal_save(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    first = aws.read_current(NAME).version_id

    save_cells(as_user(engineer), NAME, {("dev", "stripe", "public_key"): "pk_test_dev_2"})

    read = sm.get_secret_value(SecretId=NAME)
    assert current_holders(sm) == [read["VersionId"]]
    assert read["VersionId"] != first
    assert json.loads(read["SecretString"])["dev"]["stripe"]["public_key"] == "pk_test_dev_2"


def test_a_plain_put_after_a_portal_save_leaves_one_awscurrent(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    save_cells(as_user(engineer), NAME, {("dev", "stripe", "public_key"): "pk_test_dev_2"})
    portal_version = sm.get_secret_value(SecretId=NAME)["VersionId"]

    put = sm.put_secret_value(SecretId=NAME, SecretString=json.dumps(STANDARD_DOC))

    assert current_holders(sm) == [put["VersionId"]]
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    assert stages[portal_version] == ["AWSPREVIOUS"]
    assert sm.get_secret_value(SecretId=NAME)["VersionId"] == put["VersionId"]
