"""Shared fixtures: one moto server per test session over HTTP (reset between tests), personas.

AWS is faked the way production reaches AWS: boto3 -> HTTP -> ``AWS_ENDPOINT_URL``. boto3 itself
is never patched, so the tests exercise the same client code as production.
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

from secrets_admin import aws, moto_fix
from secrets_admin.permissions import Role, set_role


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    moto_fix.apply()  # stage-less reads return AWSCURRENT, as on AWS (secrets_admin/moto_fix.py)
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


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Personas and demo users get passwords; the production hasher costs ~0.5 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Hygiene index: a background listing refresh runs in a thread with its own database
# connection, which cannot see (or wait out) a test's open transaction. Tests that exercise it
# turn it on and use ``transactional_db``.
@pytest.fixture
def aws_calls() -> list[str]:
    """Secrets Manager operations this thread's client makes from now on (hygiene tests)."""
    made: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: made.append(model.name)
    )
    return made


@pytest.fixture(autouse=True)
def no_index_on_background_refresh(settings: Any) -> None:
    settings.PORTAL_INDEX_ON_REFRESH = False


@pytest.fixture
def sm(moto_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, for arranging AWS state in tests."""
    return boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def make_secret(sm: Any) -> Callable[..., str]:
    """Create a secret with CreateSecret only (never plain PutSecretValue: moto mislabels
    versions when it is mixed with stage moves)."""

    def make(name: str, value: Any = None, *, binary: bytes | None = None, **kwargs: Any) -> str:
        args: dict[str, Any] = {"Name": name, **kwargs}
        if binary is not None:
            args["SecretBinary"] = binary
        elif value is not None:
            args["SecretString"] = value if isinstance(value, str) else json.dumps(value)
        return str(sm.create_secret(**args)["ARN"])

    return make


# --- AWS calls counted at the portal's boto3 client (test_aws, test_grid_cache).


class CallCounter:
    """Counts Secrets Manager API calls of the gateway's client (botocore event hooks)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, **kwargs: Any) -> None:
        self.calls.append(model.name)

    def count(self, name: str) -> int:
        return self.calls.count(name)


@pytest.fixture
def calls() -> Iterator[CallCounter]:
    counter = CallCounter()
    client = aws.client()
    client.meta.events.register("before-call.secrets-manager", counter)
    yield counter
    client.meta.events.unregister("before-call.secrets-manager", counter)


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


# --- Single sign-on: a real OpenID Connect provider on loopback (tests/idp, npm oidc-provider).

SSO_PROVIDER_ID = "corp"
SSO_CALLBACK = f"/accounts/oidc/{SSO_PROVIDER_ID}/login/callback/"
SSO_ROLE_GROUPS = {
    "sso-auditors": "auditor",
    "sso-engineers": "engineer",
    "sso-approvers": "approver",
    "sso-admins": "admin",
}
#: The IdP's people. ``groups`` reaches the portal verbatim (missing, or a string, on purpose).
SSO_USERS: dict[str, dict[str, Any]] = {
    "erin": {
        "email": "erin@example.test",
        "name": "Erin Engineer",
        "groups": ["sso-engineers", "wiki-editors"],
    },
    "audrey": {
        "email": "audrey@example.test",
        "name": "Audrey Auditor",
        "groups": ["sso-auditors"],
    },
    "nora": {"email": "nora@example.test", "name": "Nora Nogroup", "groups": ["wiki-editors"]},
    "mo": {"email": "mo@example.test", "name": "Mo Mover", "groups": ["sso-auditors"]},
    "gus": {"email": "gus@example.test", "name": "Gus Groupless"},
    "stan": {"email": "stan@example.test", "name": "Stan String", "groups": "sso-engineers"},
}


@pytest.fixture(scope="session")
def idp(live_server: Any) -> Iterator[Any]:
    """The test OIDC provider, with redirect URIs for the live server and the test client."""
    from .idp_harness import OidcProvider

    provider = OidcProvider()
    provider.start(
        users=SSO_USERS,
        redirect_uris=[live_server.url + SSO_CALLBACK, "http://testserver" + SSO_CALLBACK],
    )
    yield provider
    provider.stop()


def sso_environ(issuer: str) -> dict[str, str]:
    """The environment variables a deployment would set for the test provider."""
    return {
        "PORTAL_SSO_PROVIDERS": SSO_PROVIDER_ID,
        "PORTAL_SSO_CORP_TYPE": "oidc",
        "PORTAL_SSO_CORP_NAME": "Corp SSO",
        "PORTAL_SSO_CORP_ISSUER": issuer,
        "PORTAL_SSO_CORP_CLIENT_ID": "portal",
        "PORTAL_SSO_CORP_CLIENT_SECRET": "portal-secret",
    }


@pytest.fixture
def sso(idp: Any, settings: Any) -> Any:
    """Settings pointing the portal at the test IdP (built from environment variables like
    production), its people reset to ``SSO_USERS``; returns the provider."""
    use_sso_environ(settings, sso_environ(idp.issuer))
    idp.set_users(SSO_USERS)
    return idp


def use_sso_environ(settings: Any, environ: dict[str, str]) -> None:
    """Configure the SSO providers from deployment-style variables, with their origins in the
    CSP ``form-action`` and the tests' group -> role mapping."""
    from portal import sso as sso_settings

    providers = sso_settings.providers_from_env(environ)
    settings.SOCIALACCOUNT_PROVIDERS = providers
    settings.PORTAL_ROLE_GROUPS = dict(SSO_ROLE_GROUPS)
    directives = dict(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])
    directives["form-action"] = ["'self'", *sso_settings.form_action_origins(providers)]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": directives}


def self_signed_certificate(common_name: str = "idp.example.test") -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate, PEM bodies without header lines."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )

    def body(pem: bytes) -> str:
        return "".join(line for line in pem.decode().splitlines() if "-----" not in line)

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return body(key_pem), body(cert.public_bytes(serialization.Encoding.PEM))


_SAML_IDP_KEYS: list[tuple[str, str]] = []

SAML_IDP_ENTITY_ID = "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTIzNDU2"
SAML_IDP_SSO_URL = "https://portal.sso.eu-west-1.amazonaws.com/saml/assertion/MTIzNDU2/login"
SAML_GROUPS_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Groups"


def saml_idp_keys() -> tuple[str, str]:
    """The test SAML IdP's (key, certificate), made once per test session."""
    if not _SAML_IDP_KEYS:
        _SAML_IDP_KEYS.append(self_signed_certificate())
    return _SAML_IDP_KEYS[0]


def saml_environ(provider_id: str = "aws") -> dict[str, str]:
    """Environment variables for an IAM-Identity-Center-style SAML provider (static metadata)."""
    prefix = f"PORTAL_SSO_{provider_id.upper()}_"
    return {
        prefix + "TYPE": "saml",
        prefix + "NAME": "AWS IAM Identity Center",
        prefix + "IDP_ENTITY_ID": SAML_IDP_ENTITY_ID,
        prefix + "IDP_SSO_URL": SAML_IDP_SSO_URL,
        prefix + "IDP_X509CERT": saml_idp_keys()[1],
        prefix + "ATTR_UID": "Subject",
        prefix + "ATTR_EMAIL": "Email",
        prefix + "GROUPS_CLAIM": SAML_GROUPS_ATTRIBUTE,
    }


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


# --- deploy: a running SAML 2.0 identity provider (pysaml2's IdP, tests/saml_idp.py), once per
# session, for tests/test_sso_saml_idp.py (HTTP) and tests/test_sso_saml_browser.py (Chromium).
@pytest.fixture(scope="session")
def saml_idp() -> Iterator[Any]:
    from .saml_idp import SamlIdentityProvider

    with SamlIdentityProvider() as idp:
        yield idp


# --- Access scopes: two teams' rules (PORTAL_ACCESS_RULES) and team A's scoped personas.

TEAM_A, TEAM_B = "team-a", "team-b"
#: Two teams chosen by the ``team`` tag; team A's leads approve, its auditors read.
TEAM_RULES: dict[str, Any] = {
    "groups": ["team-a-engineers", "team-a-leads", "team-a-auditors", "team-b-engineers"],
    "tag_keys": ["team"],
    "rule": [
        {"groups": ["team-a-engineers"], "role": "engineer", "secrets": {"tags": {"team": TEAM_A}}},
        {"groups": ["team-a-leads"], "role": "approver", "secrets": {"tags": {"team": TEAM_A}}},
        {"groups": ["team-a-auditors"], "role": "auditor", "secrets": {"tags": {"team": TEAM_A}}},
        {"groups": ["team-b-engineers"], "role": "engineer", "secrets": {"tags": {"team": TEAM_B}}},
    ],
}
#: A team-A secret, a team-B secret and an untagged one (names sort in this order).
TEAM_A_SECRET, TEAM_B_SECRET, UNTAGGED_SECRET = "alpha-secrets", "bravo-secrets", "plain-secrets"


@pytest.fixture
def team_rules(settings: Any) -> dict[str, Any]:
    """The two-team access rules in force (global personas keep their global roles)."""
    settings.PORTAL_ACCESS_RULES = json.dumps(TEAM_RULES)
    return TEAM_RULES


@pytest.fixture
def team_secrets(make_secret: Callable[..., str]) -> tuple[str, str, str]:
    """The team-A, team-B and untagged secrets, each holding :data:`STANDARD_DOC`."""
    make_secret(TEAM_A_SECRET, STANDARD_DOC, Tags=[{"Key": "team", "Value": TEAM_A}])
    make_secret(TEAM_B_SECRET, STANDARD_DOC, Tags=[{"Key": "team", "Value": TEAM_B}])
    make_secret(UNTAGGED_SECRET, STANDARD_DOC)
    return TEAM_A_SECRET, TEAM_B_SECRET, UNTAGGED_SECRET


def _scoped_persona(django_user_model: Any, username: str, idp_groups: list[str]) -> Any:
    from secrets_admin.permissions import set_idp_groups

    user = django_user_model.objects.create_user(
        username=username, password=username, email=f"{username}@example.test"
    )
    set_idp_groups(user, idp_groups)
    return user


@pytest.fixture
def team_a_engineer(django_user_model: Any, team_rules: Any) -> Any:
    return _scoped_persona(django_user_model, "tara-team-a-engineer", ["team-a-engineers"])


@pytest.fixture
def team_a_approver(django_user_model: Any, team_rules: Any) -> Any:
    return _scoped_persona(django_user_model, "lee-team-a-lead", ["team-a-leads"])


@pytest.fixture
def team_a_auditor(django_user_model: Any, team_rules: Any) -> Any:
    return _scoped_persona(django_user_model, "aud-team-a-auditor", ["team-a-auditors"])
