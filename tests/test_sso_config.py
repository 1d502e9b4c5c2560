"""SSO configuration from environment variables, SAML sign-in, and production being SSO-only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from portal import sso
from secrets_admin.adapters import ClaimsProblem, groups_from
from secrets_admin.models import AuditEvent
from secrets_admin.permissions import Role, role_for, roles_for_groups

from .conftest import (
    SAML_GROUPS_ATTRIBUTE,
    SAML_IDP_ENTITY_ID,
    SAML_IDP_SSO_URL,
    SSO_ROLE_GROUPS,
    saml_environ,
    saml_idp_keys,
)

ROOT = Path(__file__).resolve().parent.parent

OKTA = {
    "PORTAL_SSO_PROVIDERS": "okta",
    "PORTAL_SSO_OKTA_NAME": "Okta",
    "PORTAL_SSO_OKTA_ISSUER": "https://acme.okta.com/oauth2/default",
    "PORTAL_SSO_OKTA_CLIENT_ID": "0oa1b2c3d4",
    "PORTAL_SSO_OKTA_CLIENT_SECRET": "okta-client-secret",
}


# --------------------------------------------------------------------------------------------
# Environment variables -> allauth settings


def test_oidc_provider_from_env_has_pkce_and_the_groups_scope() -> None:
    providers = sso.providers_from_env(OKTA)

    assert providers == {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": "okta",
                    "name": "Okta",
                    "client_id": "0oa1b2c3d4",
                    "secret": "okta-client-secret",
                    "settings": {
                        "server_url": "https://acme.okta.com/oauth2/default",
                        "scope": ["openid", "email", "profile", "groups"],
                        "oauth_pkce_enabled": True,
                        "groups_claim": "groups",
                        "fetch_userinfo": True,
                    },
                }
            ],
        }
    }


def test_several_providers_of_both_kinds() -> None:
    environ = {
        **OKTA,
        **saml_environ("aws"),
        "PORTAL_SSO_PROVIDERS": "okta, aws",
        "PORTAL_GROUPS_CLAIM": "roles",
        "PORTAL_SSO_OKTA_SCOPES": "openid email groups",
        "PORTAL_SSO_OKTA_TOKEN_AUTH_METHOD": "client_secret_post",
    }
    providers = sso.providers_from_env(environ)

    okta = providers["openid_connect"]["APPS"][0]["settings"]
    assert okta["scope"] == ["openid", "email", "groups"]
    assert okta["groups_claim"] == "roles"
    assert okta["token_auth_method"] == "client_secret_post"
    aws = providers["saml"]["APPS"][0]
    assert (aws["provider_id"], aws["client_id"], aws["name"]) == (
        "aws",
        "aws",
        "AWS IAM Identity Center",
    )
    assert aws["settings"]["idp"]["entity_id"] == SAML_IDP_ENTITY_ID
    assert aws["settings"]["groups_claim"] == SAML_GROUPS_ATTRIBUTE
    assert aws["settings"]["advanced"]["want_assertion_signed"] is True
    assert sso.form_action_origins(providers) == [
        "https://acme.okta.com",
        "https://portal.sso.eu-west-1.amazonaws.com",
    ]


def test_saml_provider_may_use_a_metadata_url() -> None:
    environ = {
        "PORTAL_SSO_PROVIDERS": "idc",
        "PORTAL_SSO_IDC_TYPE": "saml",
        "PORTAL_SSO_IDC_IDP_ENTITY_ID": SAML_IDP_ENTITY_ID,
        "PORTAL_SSO_IDC_IDP_METADATA_URL": "https://portal.sso.eu-west-1.amazonaws.com/saml/metadata/MTIz",
    }
    idp = sso.providers_from_env(environ)["saml"]["APPS"][0]["settings"]["idp"]
    assert idp == {
        "entity_id": SAML_IDP_ENTITY_ID,
        "metadata_url": "https://portal.sso.eu-west-1.amazonaws.com/saml/metadata/MTIz",
    }


def test_no_provider_configured_gives_no_providers() -> None:
    assert sso.providers_from_env({}) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"PORTAL_SSO_OKTA_ISSUER": ""}, "Set PORTAL_SSO_OKTA_ISSUER"),
        ({"PORTAL_SSO_OKTA_CLIENT_SECRET": ""}, "Set PORTAL_SSO_OKTA_CLIENT_SECRET"),
        ({"PORTAL_SSO_OKTA_TYPE": "ldap"}, "must be oidc or saml"),
        ({"PORTAL_SSO_PROVIDERS": "Okta Corp"}, "not a valid id"),
        ({"PORTAL_SSO_PROVIDERS": "okta,okta"}, "names a provider twice"),
        ({"PORTAL_SSO_OKTA_TOKEN_AUTH_METHOD": "private_key_jwt"}, "TOKEN_AUTH_METHOD"),
        ({"PORTAL_SSO_OKTA_TYPE": "saml"}, "Set PORTAL_SSO_OKTA_IDP_ENTITY_ID"),
        (
            {"PORTAL_SSO_OKTA_TYPE": "saml", "PORTAL_SSO_OKTA_IDP_ENTITY_ID": "urn:x"},
            "Set PORTAL_SSO_OKTA_IDP_SSO_URL",
        ),
    ],
)
def test_incomplete_provider_settings_refuse_to_start(change: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        sso.providers_from_env({**OKTA, **change})


def test_role_groups_mapping_is_parsed() -> None:
    mapping = sso.role_groups_from_env(
        " okta-secrets-auditors=auditor, cn=ops=Engineer ,Secrets Admins=admin"
    )
    assert mapping == {
        "okta-secrets-auditors": "auditor",
        "cn=ops": "engineer",
        "Secrets Admins": "admin",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("admins", "should look like"),
        ("admins=root", "names role 'root'"),
        ("admins=admin,admins=auditor", "maps group 'admins' twice"),
        ("=admin", "should look like"),
    ],
)
def test_bad_role_groups_mapping_refuses_to_start(value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        sso.role_groups_from_env(value)


def test_roles_for_groups_ignores_unmapped_groups(settings: Any) -> None:
    settings.PORTAL_ROLE_GROUPS = dict(SSO_ROLE_GROUPS)

    assert roles_for_groups(["wiki", "sso-engineers", "SSO-ADMINS"]) == {Role.ENGINEER}
    assert roles_for_groups([]) == set()


# --------------------------------------------------------------------------------------------
# The groups claim


def test_groups_come_from_userinfo_before_the_id_token() -> None:
    data = {"userinfo": {"groups": ["a"]}, "id_token": {"groups": ["b"]}}
    assert groups_from(data, "groups") == ["a"]
    assert groups_from({"userinfo": {}, "id_token": {"groups": ["b"]}}, "groups") == ["b"]


def test_groups_come_from_saml_attributes() -> None:
    assert groups_from({SAML_GROUPS_ATTRIBUTE: ["g1", "g2"]}, SAML_GROUPS_ATTRIBUTE) == ["g1", "g2"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"userinfo": {"email": "x"}}, "groups_claim_missing"),
        ({"userinfo": {"groups": "admins"}}, "groups_claim_not_a_list"),
        ({"userinfo": {"groups": {"admins": True}}}, "groups_claim_not_a_list"),
        ({"userinfo": {"groups": ["admins", 7]}}, "groups_claim_not_a_list"),
        ({"userinfo": {"groups": None}}, "groups_claim_not_a_list"),
    ],
)
def test_unusable_groups_claim_is_a_claims_problem(data: dict[str, Any], code: str) -> None:
    with pytest.raises(ClaimsProblem) as info:
        groups_from(data, "groups")
    assert info.value.code == code


# --------------------------------------------------------------------------------------------
# SAML (AWS IAM Identity Center style): a signed assertion posted to the portal


HOST = "portal.example.test"
ACS = f"http://{HOST}/accounts/saml/aws/acs/"


@pytest.fixture
def saml(settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = sso.providers_from_env(
        {"PORTAL_SSO_PROVIDERS": "aws", **saml_environ("aws")}
    )
    settings.PORTAL_ROLE_GROUPS = dict(SSO_ROLE_GROUPS)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


@pytest.fixture
def saml_client(client: Any) -> Any:
    client.defaults["HTTP_HOST"] = HOST
    return client


def _saml_request_id(location: str) -> str:
    """The ``ID`` of the AuthnRequest carried (deflated, base64) in the redirect to the IdP."""
    encoded = parse_qs(urlsplit(location).query)["SAMLRequest"][0]
    xml = zlib.decompress(base64.b64decode(encoded), -15).decode()
    return xml.split(' ID="', 1)[1].split('"', 1)[0]


def saml_response(in_response_to: str, subject: str, attributes: dict[str, list[str]]) -> str:
    """A SAML Response with an assertion signed by the test IdP's key, base64-encoded."""
    key, cert = saml_idp_keys()
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    issued, later = now.strftime(fmt), (now + timedelta(minutes=5)).strftime(fmt)
    values = "".join(
        f'<saml:Attribute Name="{name}">'
        + "".join(f"<saml:AttributeValue>{v}</saml:AttributeValue>" for v in vals)
        + "</saml:Attribute>"
        for name, vals in attributes.items()
    )
    assertion = (
        f'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a{uuid.uuid4().hex}" '
        f'Version="2.0" IssueInstant="{issued}"><saml:Issuer>{SAML_IDP_ENTITY_ID}</saml:Issuer>'
        f'<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
        f"{subject}@example.test</saml:NameID>"
        f'<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData InResponseTo="{in_response_to}" NotOnOrAfter="{later}" '
        f'Recipient="{ACS}"/></saml:SubjectConfirmation></saml:Subject>'
        f'<saml:Conditions NotBefore="{issued}" NotOnOrAfter="{later}"><saml:AudienceRestriction>'
        f"<saml:Audience>http://{HOST}/accounts/saml/aws/metadata/</saml:Audience>"
        f"</saml:AudienceRestriction></saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="_s1"><saml:AuthnContext>'
        f"<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
        f"</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        f"<saml:AttributeStatement>{values}</saml:AttributeStatement></saml:Assertion>"
    )
    pem_key = f"-----BEGIN RSA PRIVATE KEY-----\n{key}\n-----END RSA PRIVATE KEY-----"
    pem_cert = f"-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----"
    signed = OneLogin_Saml2_Utils.add_sign(assertion, pem_key, pem_cert)
    signed_text = signed.decode() if isinstance(signed, bytes) else str(signed)
    signed_text = signed_text.split("?>", 1)[-1]
    response = (
        f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{uuid.uuid4().hex}" '
        f'Version="2.0" IssueInstant="{issued}" Destination="{ACS}" InResponseTo="{in_response_to}">'
        f"<saml:Issuer>{SAML_IDP_ENTITY_ID}</saml:Issuer><samlp:Status>"
        f'<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
        f"{signed_text}</samlp:Response>"
    )
    return base64.b64encode(response.encode()).decode()


def saml_sign_in(
    client: Any, subject: str, groups: list[str] | None, *, tamper: bool = False
) -> Any:
    to_idp = client.post(reverse("saml_login", args=["aws"]))
    assert to_idp.status_code == HTTPStatus.FOUND and to_idp["Location"].startswith(
        SAML_IDP_SSO_URL
    )
    attributes = {"Subject": [subject], "Email": [f"{subject}@example.test"]}
    if groups is not None:
        attributes[SAML_GROUPS_ATTRIBUTE] = groups
    encoded = saml_response(_saml_request_id(to_idp["Location"]), subject, attributes)
    if tamper:  # a group added after signing
        xml = base64.b64decode(encoded).decode()
        xml = xml.replace(
            "</saml:AttributeValue>",
            "</saml:AttributeValue><saml:AttributeValue>sso-admins</saml:AttributeValue>",
            1,
        )
        encoded = base64.b64encode(xml.encode()).decode()
    posted = client.post(reverse("saml_acs", args=["aws"]), {"SAMLResponse": encoded})
    assert posted.status_code == HTTPStatus.FOUND
    return client.get(posted["Location"], follow=True)


@pytest.mark.django_db
def test_saml_sign_in_gives_the_role_of_the_groups_attribute(saml: None, saml_client: Any) -> None:
    response = saml_sign_in(saml_client, "sam", ["sso-approvers", "other"])

    assert response.status_code == HTTPStatus.OK
    account = SocialAccount.objects.get(provider="aws", uid="sam")
    assert role_for(account.user) is Role.APPROVER
    assert account.user.email == "sam@example.test"
    event = AuditEvent.objects.get(action="sign_in", outcome="succeeded")
    assert (event.actor_provider, event.actor_issuer, event.actor_subject) == (
        "aws",
        SAML_IDP_ENTITY_ID,
        "sam",
    )


@pytest.mark.django_db
def test_saml_without_groups_attribute_is_refused(saml: None, saml_client: Any) -> None:
    response = saml_sign_in(saml_client, "sam", None)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert f"sent no “{SAML_GROUPS_ATTRIBUTE}” claim" in response.content.decode()
    assert "_auth_user_id" not in saml_client.session


@pytest.mark.django_db
def test_saml_assertion_altered_after_signing_is_refused(saml: None, saml_client: Any) -> None:
    response = saml_sign_in(saml_client, "sam", ["sso-auditors"], tamper=True)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "Sign-in failed" in response.content.decode()
    assert "_auth_user_id" not in saml_client.session
    assert not SocialAccount.objects.exists()
    assert AuditEvent.objects.get(action="sign_in", outcome="failed").actor_provider == "aws"


@pytest.mark.django_db
def test_saml_metadata_names_the_portal_endpoints(saml: None, saml_client: Any) -> None:
    response = saml_client.get(reverse("saml_metadata", args=["aws"]))

    xml = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert f'entityID="http://{HOST}/accounts/saml/aws/metadata/"' in xml
    assert f'Location="{ACS}"' in xml


@pytest.mark.django_db
def test_sign_in_page_has_the_saml_button(saml: None, saml_client: Any) -> None:
    html = saml_client.get(reverse("account_login")).content.decode()

    assert "Sign in with AWS IAM Identity Center" in html
    assert 'action="/accounts/saml/aws/login/"' in html


# --------------------------------------------------------------------------------------------
# Production: SSO only, secure cookies (a separate process with production settings)

PRODUCTION_PROBE = r"""
import json
import django
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse

django.setup()
call_command("migrate", verbosity=0)
from django.conf import settings

# The image runs collectstatic at build time; this probe has no manifest, so plain storage.
settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

def routed(name):
    try:
        reverse(name)
        return True
    except NoReverseMatch:
        return False

client = Client()
page = client.get("/accounts/login/", secure=True)
post = client.post("/accounts/login/", {"login": "admin", "password": "admin"}, secure=True)
print(json.dumps({
    "routed": {n: routed(n) for n in ("account_login", "account_logout", "account_signup",
               "account_reset_password", "account_change_password", "account_set_password")},
    "login_status": page.status_code,
    "login_html": page.content.decode(),
    "csp": page.headers.get("Content-Security-Policy", ""),
    "post_status": post.status_code,
    "cookies": [settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY,
                settings.SESSION_COOKIE_SAMESITE, settings.CSRF_COOKIE_SECURE],
    "session_age": settings.SESSION_COOKIE_AGE,
}))
"""


@pytest.mark.django_db
def test_production_is_sso_only_with_secure_cookies(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PORTAL_", "DJANGO_", "AWS_ENDPOINT")) and k != "DEBUG"
    }
    env.update(
        {
            **OKTA,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "SECRET_KEY": "production-probe-" + "x" * 40,
            "PORTAL_FINGERPRINT_KEY": "production-probe-fingerprint-0123456789",
            "ALLOWED_HOSTS": "testserver",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
            "PORTAL_ROLE_GROUPS": "okta-secrets-engineers=engineer",
            # Audit devices (README "Audit you can prove"): a signing key, no devices.
            "PORTAL_AUDIT_SIGNING_KEY": base64.b64encode(b"k" * 32).decode(),
            "PORTAL_AUDIT_DEVICES": "none",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])

    assert probe["routed"] == {
        "account_login": True,
        "account_logout": True,
        "account_signup": False,
        "account_reset_password": False,
        "account_change_password": False,
        "account_set_password": False,
    }
    assert probe["login_status"] == HTTPStatus.OK
    assert "Sign in with Okta" in probe["login_html"]
    assert 'type="password"' not in probe["login_html"]
    assert probe["post_status"] == HTTPStatus.FORBIDDEN
    assert "form-action 'self' https://acme.okta.com" in probe["csp"]
    assert probe["cookies"] == [True, True, "Lax", True]
    assert probe["session_age"] == 8 * 3600
