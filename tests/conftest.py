"""Shared fixtures: one moto server per test session over HTTP (reset between tests), personas.

AWS is faked the way production reaches AWS: boto3 -> HTTP -> ``AWS_ENDPOINT_URL``. boto3 itself
is never patched (STYLE.md "Tests").
"""

from __future__ import annotations

import os

os.environ.setdefault("PORTAL_TESTING", "1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from secrets_admin import aws
from secrets_admin.permissions import Role, set_role


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    server.stop()


@pytest.fixture(autouse=True)
def aws_reset(moto_endpoint: str, settings: Any) -> Iterator[None]:
    """Fresh AWS state, a fresh client and an empty cache for every test."""
    req = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req).read()
    aws.reset_clients()
    from django.core.cache import cache

    cache.clear()
    yield
    aws.reset_clients()


@pytest.fixture
def sm(moto_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, for arranging AWS state in tests."""
    return boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def make_secret(sm: Any) -> Callable[..., str]:
    """Create a secret with CreateSecret only (never plain PutSecretValue; see the facts file)."""

    def make(name: str, value: Any = None, *, binary: bytes | None = None, **kwargs: Any) -> str:
        args: dict[str, Any] = {"Name": name, **kwargs}
        if binary is not None:
            args["SecretBinary"] = binary
        elif value is not None:
            args["SecretString"] = value if isinstance(value, str) else json.dumps(value)
        return str(sm.create_secret(**args)["ARN"])

    return make


STANDARD_DOC = {
    "sandbox": {"stripe": {"public_key": "pk_test_sand", "secret_key": "sk_test_sand"}},
    "dev": {
        "stripe": {"public_key": "pk_test_dev", "secret_key": "sk_test_dev"},
        "databricks": {"client_id": "dev-client", "client_secret": "dev-secret"},
    },
    "main": {"stripe": {"public_key": "pk_live_main", "secret_key": "sk_live_main"}},
}


def _persona(django_user_model: Any, username: str, roles: list[Role]) -> Any:
    user = django_user_model.objects.create_user(username=username, password=username)
    set_role(user, roles)
    return user


@pytest.fixture
def engineer(django_user_model: Any) -> Any:
    return _persona(django_user_model, "erin-engineer", [Role.ENGINEER])


@pytest.fixture
def approver(django_user_model: Any) -> Any:
    return _persona(django_user_model, "alex-approver", [Role.APPROVER])


@pytest.fixture
def auditor(django_user_model: Any) -> Any:
    return _persona(django_user_model, "audrey-auditor", [Role.AUDITOR])


@pytest.fixture
def admin(django_user_model: Any) -> Any:
    return _persona(django_user_model, "ada-admin", [Role.ADMIN])


@pytest.fixture
def outsider(django_user_model: Any) -> Any:
    return _persona(django_user_model, "otto-outsider", [])


@pytest.fixture
def as_user(client: Any) -> Callable[[Any], Any]:
    """Sign the test client in as the given user and return the client."""

    def login(user: Any) -> Any:
        client.force_login(user)
        return client

    return login


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: Any
) -> None:
    """A file-backed SQLite test database instead of the shared-cache in-memory one.

    SQLite's shared cache answers a second writer with "table is locked" at once, ignoring the busy
    timeout, so concurrent saves (the audit chain under 20 threads) would fail instead of queueing
    as they do on a file database or PostgreSQL.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")
