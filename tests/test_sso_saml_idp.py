"""SAML single sign-on against a running identity provider (pysaml2's IdP on loopback).

The whole SP-initiated flow over HTTP: the portal's AuthnRequest (HTTP-Redirect binding) to the
IdP, the IdP's login page, its signed Response posted back to the portal's assertion consumer
service. The portal knows the IdP only by its metadata URL; the IdP knows the portal only by the
portal's metadata page.
"""

from __future__ import annotations

import urllib.parse
from http import HTTPStatus
from typing import Any

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.urls import reverse

from secrets_admin.models import AuditEvent
from secrets_admin.permissions import Role, role_for

from .conftest import use_sso_environ
from .idp_harness import parse_html
from .saml_idp import GROUPS, SamlIdentityProvider
from .test_sso import assert_clear_failure, signed_in_user

pytestmark = pytest.mark.django_db

PROVIDER = "entra"
#: python3-saml refuses single-label host names such as Django's "testserver".
HOST = "portal.example.test"
SAML_USERS: dict[str, dict[str, Any]] = {
    "erin": {"email": "erin@example.test", "name": "Erin Engineer", "groups": ["sso-engineers"]},
    "audrey": {
        "email": "audrey@example.test",
        "name": "Audrey Auditor",
        "groups": ["sso-auditors"],
    },
    "mo": {"email": "mo@example.test", "name": "Mo Mover", "groups": ["sso-auditors"]},
}


def saml_environ(idp: SamlIdentityProvider) -> dict[str, str]:
    """What a deployment sets for an IdP known by its metadata URL."""
    prefix = f"PORTAL_SSO_{PROVIDER.upper()}_"
    return {
        "PORTAL_SSO_PROVIDERS": PROVIDER,
        prefix + "TYPE": "saml",
        prefix + "NAME": "Entra ID",
        prefix + "IDP_ENTITY_ID": idp.entity_id,
        prefix + "IDP_METADATA_URL": idp.metadata_url,
        prefix + "GROUPS_CLAIM": GROUPS,
    }


def configure(settings: Any, idp: SamlIdentityProvider) -> None:
    use_sso_environ(settings, saml_environ(idp))
    idp.set_users(SAML_USERS)
    idp.mode = ""


_registered: set[str] = set()


def register_portal(idp: SamlIdentityProvider, metadata_xml: str, acs: str) -> None:
    """Upload the portal's metadata to the IdP (once per portal address)."""
    if acs not in _registered:
        idp.register_sp(metadata_xml)
        idp.register_other_sp(acs)
        _registered.add(acs)


@pytest.fixture
def saml(saml_idp: SamlIdentityProvider, settings: Any, client: Any) -> SamlIdentityProvider:
    configure(settings, saml_idp)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    client.defaults["HTTP_HOST"] = HOST
    metadata = client.get(reverse("saml_metadata", args=[PROVIDER]))
    assert metadata.status_code == HTTPStatus.OK
    acs = f"http://{HOST}" + reverse("saml_acs", args=[PROVIDER])
    register_portal(saml_idp, metadata.content.decode(), acs)
    return saml_idp


def idp_response(client: Any, username: str) -> dict[str, str]:
    """Start at the portal, sign in at the IdP; the form the IdP's page posts to the portal."""
    start = client.post(reverse("saml_login", args=[PROVIDER]))
    assert start.status_code == HTTPStatus.FOUND, start.content.decode()[:1000]
    with requests.Session() as browser:
        browser.trust_env = False
        login_page = browser.get(start["Location"], timeout=30)
        assert login_page.status_code == HTTPStatus.OK, login_page.text
        [form], _ = parse_html(login_page.text)
        values = {**form.values(), "username": username, "password": "any"}
        posted = browser.post(
            urllib.parse.urljoin(login_page.url, form.action), data=values, timeout=30
        )
    assert posted.status_code == HTTPStatus.OK, posted.text
    [to_portal], _ = parse_html(posted.text)
    return {"action": to_portal.action, **to_portal.values()}


def post_to_portal(client: Any, form: dict[str, str]) -> Any:
    """The browser's auto-post of the IdP's form to the portal, then the portal's redirects."""
    path = urllib.parse.urlsplit(form["action"]).path
    response = client.post(path, {k: v for k, v in form.items() if k != "action"})
    while response.status_code == HTTPStatus.FOUND and response["Location"].startswith(
        "/accounts/"
    ):
        response = client.get(response["Location"])
    return response


def sign_in(client: Any, username: str) -> Any:
    return post_to_portal(client, idp_response(client, username))


def test_engineer_signs_in_through_the_identity_provider(saml: Any, client: Any) -> None:
    response = sign_in(client, "erin")

    user = signed_in_user(client)
    assert user is not None, response.content.decode()[:2000]
    assert role_for(user) is Role.ENGINEER
    assert user.email == "erin@example.test"
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("secrets_admin:secret_list")


def test_groups_attribute_gives_the_auditor_role(saml: Any, client: Any) -> None:
    sign_in(client, "audrey")
    assert role_for(signed_in_user(client)) is Role.AUDITOR


def test_role_follows_the_groups_at_each_sign_in(saml: Any, client: Any) -> None:
    sign_in(client, "mo")
    first = signed_in_user(client)
    assert role_for(first) is Role.AUDITOR
    client.post(reverse("account_logout"))

    saml.set_users({**SAML_USERS, "mo": {**SAML_USERS["mo"], "groups": ["sso-approvers"]}})
    sign_in(client, "mo")

    again = signed_in_user(client)
    assert again.pk == first.pk
    assert role_for(again) is Role.APPROVER


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("other_audience", "is not a valid audience for this Response"),
        ("expired", "Could not validate timestamp: expired"),
        ("wrong_signature", "Signature validation failed"),
    ],
    ids=["assertion for another audience", "expired assertion", "wrong signature"],
)
def test_bad_assertion_is_refused_with_a_clear_page_and_no_session(
    saml: Any, client: Any, caplog: Any, mode: str, reason: str
) -> None:
    saml.mode = mode
    response = sign_in(client, "erin")

    assert_clear_failure(response, client, HTTPStatus.UNAUTHORIZED, "did not complete")
    # Refused for this reason (python3-saml's check), not for another one on the way.
    assert reason in caplog.text
    assert AuditEvent.objects.filter(action="sign_in", outcome="failed").exists()
    assert not SocialAccount.objects.exists()


def test_replayed_assertion_is_refused(saml: Any, client: Any) -> None:
    form = idp_response(client, "erin")
    post_to_portal(client, form)
    assert signed_in_user(client) is not None
    client.post(reverse("account_logout"))

    replay = post_to_portal(client, form)
    assert_clear_failure(replay, client, HTTPStatus.UNAUTHORIZED, "does not belong to a sign-in")
