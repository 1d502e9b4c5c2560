"""Single sign-on through a real OpenID Connect provider (authorization code + PKCE over HTTP).

The portal runs in-process (Django test client); the IdP is panva ``oidc-provider`` on loopback
(``tests/idp``). Every redirect is a real HTTP hop, including the portal's token and userinfo
calls to the IdP.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from http import HTTPStatus
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.urls import reverse

from secrets_admin.middleware import IDLE_KEY, SIGNED_IN_KEY
from secrets_admin.models import AuditEvent
from secrets_admin.permissions import Role, role_for

from .conftest import SSO_CALLBACK, SSO_PROVIDER_ID
from .idp_harness import django_client_transport, oidc_login

pytestmark = pytest.mark.django_db

LOGIN_PATH = f"/accounts/oidc/{SSO_PROVIDER_ID}/login/"
START = "http://testserver" + LOGIN_PATH


def sign_in(client: Any, username: str, **kwargs: Any) -> Any:
    """The whole browser round trip through the IdP; returns the last response."""
    return oidc_login(django_client_transport(client), START, username, **kwargs)


def signed_in_user(client: Any) -> Any:
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def audit_actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def assert_clear_failure(response: Any, client: Any, status: HTTPStatus, text: str) -> None:
    html = response.content.decode()
    assert response.status_code == status
    assert "Sign-in failed" in html and text in html
    assert "Traceback" not in html and "Exception" not in html
    assert signed_in_user(client) is None


# --------------------------------------------------------------------------------------------
# The people of the test identity provider (SSO_USERS): roles from their groups


def test_engineer_signs_in_with_pkce_and_gets_the_engineer_role(sso: Any, client: Any) -> None:
    trace: list[dict[str, Any]] = []
    response = sign_in(client, "erin", trace=trace)

    assert response.status_code == HTTPStatus.OK
    user = signed_in_user(client)
    assert role_for(user) is Role.ENGINEER
    assert not user.is_staff and not user.is_superuser
    assert not user.has_usable_password()
    authorize = next(h for h in trace if h["location"] and "code_challenge=" in h["location"])
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert "groups" in query["scope"][0].split()
    assert any(h["url"].startswith("http://testserver" + SSO_CALLBACK) for h in trace)


def test_identity_keeps_provider_issuer_subject_email_and_name(sso: Any, client: Any) -> None:
    sign_in(client, "erin")

    account = SocialAccount.objects.get(provider=SSO_PROVIDER_ID, uid="erin")
    assert account.extra_data["portal_issuer"] == sso.issuer
    assert account.user.email == "erin@example.test"
    assert account.user.get_full_name() == "Erin Engineer"
    event = AuditEvent.objects.get(action="sign_in", outcome="succeeded")
    assert (event.actor_provider, event.actor_issuer, event.actor_subject) == (
        SSO_PROVIDER_ID,
        sso.issuer,
        "erin",
    )
    assert (event.actor_email, event.actor_name) == ("erin@example.test", "Erin Engineer")
    assert event.detail == {"method": "sso", "role": "engineer"}


def test_auditor_signs_in_and_may_view_but_not_reveal(
    sso: Any, client: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", {"dev": {"stripe": {"secret_key": "CANARY-sso-1"}}})
    sign_in(client, "audrey")

    assert role_for(signed_in_user(client)) is Role.AUDITOR
    detail = client.get(reverse("secrets_admin:secret_detail", args=["shop-secrets"]))
    assert detail.status_code == HTTPStatus.OK
    reveal = client.post(
        reverse("secrets_admin:cell_reveal", args=["shop-secrets"]),
        {"version_id": "x", "environment": "dev", "service": "stripe", "key": "secret_key"},
    )
    assert reveal.status_code == HTTPStatus.FORBIDDEN
    assert b"CANARY-sso-1" not in reveal.content


def test_person_in_no_mapped_group_signs_in_and_sees_no_access(sso: Any, client: Any) -> None:
    response = sign_in(client, "nora")

    user = signed_in_user(client)
    assert user is not None and role_for(user) is Role.NONE
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "no access yet" in response.content.decode()


def test_role_follows_the_groups_at_every_sign_in(sso: Any, client: Any) -> None:
    sign_in(client, "mo")
    user = signed_in_user(client)
    assert role_for(user) is Role.AUDITOR

    client.post(reverse("account_logout"))
    sso.set_users(
        {"mo": {"email": "mo@example.test", "groups": ["sso-engineers", "sso-approvers"]}}
    )
    sign_in(client, "mo")
    again = signed_in_user(client)
    assert again.pk == user.pk
    assert role_for(again) is Role.APPROVER
    assert set(again.groups.values_list("name", flat=True)) == {
        "portal:engineer",
        "portal:approver",
    }

    sso.set_users({"mo": {"email": "mo@example.test", "groups": []}})
    response = sign_in(client, "mo")
    assert role_for(signed_in_user(client)) is Role.NONE
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_sso_never_makes_staff_or_superuser_even_when_claimed(sso: Any, client: Any) -> None:
    sso.set_users(
        {
            "eve": {
                "email": "eve@example.test",
                "groups": ["sso-admins"],
                "is_superuser": True,
                "is_staff": True,
            }
        }
    )
    sign_in(client, "eve")

    user = signed_in_user(client)
    assert role_for(user) is Role.ADMIN
    assert not user.is_superuser and not user.is_staff


def test_local_user_with_same_username_is_not_taken_over(
    sso: Any, client: Any, django_user_model: Any
) -> None:
    local = django_user_model.objects.create_user(
        username="erin", password="erin", email="erin@example.test"
    )
    sign_in(client, "erin")

    user = signed_in_user(client)
    assert user.pk != local.pk
    assert role_for(local) is Role.NONE


def test_sign_in_page_shows_one_button_per_provider(sso: Any, client: Any, settings: Any) -> None:
    from portal import sso as sso_settings

    from .conftest import sso_environ

    environ = {
        **sso_environ(sso.issuer),
        "PORTAL_SSO_PROVIDERS": "corp,backup",
        "PORTAL_SSO_BACKUP_NAME": "Backup IdP",
        "PORTAL_SSO_BACKUP_ISSUER": sso.issuer,
        "PORTAL_SSO_BACKUP_CLIENT_ID": "portal",
        "PORTAL_SSO_BACKUP_CLIENT_SECRET": "portal-secret",
    }
    settings.SOCIALACCOUNT_PROVIDERS = sso_settings.providers_from_env(environ)
    html = client.get(reverse("account_login")).content.decode()

    assert "Sign in with Corp SSO" in html and "Sign in with Backup IdP" in html
    assert 'action="/accounts/oidc/corp/login/"' in html
    assert 'action="/accounts/oidc/backup/login/"' in html


# --------------------------------------------------------------------------------------------
# Bad input: each a clear page, no stack trace, no session


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _point_at(settings: Any, server_url: str) -> None:
    providers = settings.SOCIALACCOUNT_PROVIDERS
    providers["openid_connect"]["APPS"][0]["settings"]["server_url"] = server_url
    settings.SOCIALACCOUNT_PROVIDERS = providers


def test_identity_provider_down_at_start_gives_a_clear_page(
    sso: Any, client: Any, settings: Any
) -> None:
    _point_at(settings, f"http://127.0.0.1:{_closed_port()}")

    response = client.post(LOGIN_PATH)

    assert_clear_failure(response, client, HTTPStatus.BAD_GATEWAY, "could not be reached")
    event = AuditEvent.objects.get(action="sign_in", outcome="failed")
    assert (event.error_code, event.actor_provider) == ("idp_unreachable", SSO_PROVIDER_ID)


def test_identity_provider_down_at_callback_gives_a_clear_page(
    sso: Any, client: Any, settings: Any
) -> None:
    issuer = sso.issuer

    def transport(method: str, url: str, data: Any) -> Any:
        if SSO_CALLBACK in url:  # the IdP dies between the sign-in and the callback
            _point_at(settings, f"http://127.0.0.1:{_closed_port()}")
        return inner(method, url, data)

    inner = django_client_transport(client)
    response = oidc_login(transport, START, "erin", issuer=issuer)

    assert_clear_failure(response, client, HTTPStatus.BAD_GATEWAY, "could not be reached")
    assert (
        AuditEvent.objects.get(action="sign_in", outcome="failed").error_code == "idp_unreachable"
    )


def test_callback_with_wrong_state_is_refused(sso: Any, client: Any) -> None:
    inner = django_client_transport(client)

    def transport(method: str, url: str, data: Any) -> Any:
        if SSO_CALLBACK in url:
            parts = urllib.parse.urlsplit(url)
            query = dict(urllib.parse.parse_qsl(parts.query))
            query["state"] = "forged-state"
            url = parts._replace(query=urllib.parse.urlencode(query)).geturl()
        return inner(method, url, data)

    response = oidc_login(transport, START, "erin")

    assert_clear_failure(response, client, HTTPStatus.UNAUTHORIZED, "does not belong to a sign-in")
    assert not SocialAccount.objects.exists()
    assert AuditEvent.objects.get(action="sign_in", outcome="failed").error_code == "state_mismatch"


def test_replayed_code_is_refused(sso: Any, client: Any) -> None:
    trace: list[dict[str, Any]] = []
    sign_in(client, "erin", trace=trace)
    callback = next(h["url"] for h in trace if SSO_CALLBACK in h["url"])
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["code"]
    client.post(reverse("account_logout"))

    # A new sign-in gives a fresh, valid state; the old code is sent with it.
    to_idp = client.post(LOGIN_PATH)
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_idp["Location"]).query))["state"]
    response = client.get(SSO_CALLBACK, {"code": code, "state": state, "iss": sso.issuer})

    assert_clear_failure(response, client, HTTPStatus.UNAUTHORIZED, "used already or has expired")
    assert (
        AuditEvent.objects.filter(action="sign_in", outcome="failed").get().error_code
        == "code_rejected"
    )


def test_replayed_callback_url_is_refused(sso: Any, client: Any) -> None:
    trace: list[dict[str, Any]] = []
    sign_in(client, "erin", trace=trace)
    callback = next(h["url"] for h in trace if SSO_CALLBACK in h["url"])
    client.post(reverse("account_logout"))

    response = client.get(callback.removeprefix("http://testserver"))

    assert_clear_failure(response, client, HTTPStatus.UNAUTHORIZED, "Start again")


@pytest.mark.parametrize(
    ("username", "code", "text"),
    [
        ("gus", "groups_claim_missing", "sent no “groups” claim"),
        ("stan", "groups_claim_not_a_list", "is not a list of group names"),
    ],
)
def test_unusable_groups_claim_refuses_the_sign_in(
    sso: Any, client: Any, username: str, code: str, text: str
) -> None:
    response = sign_in(client, username)

    assert_clear_failure(response, client, HTTPStatus.FORBIDDEN, text)
    assert not get_user_model().objects.exists()
    event = AuditEvent.objects.get(action="sign_in", outcome="failed")
    assert (event.error_code, event.actor_subject, event.actor_issuer) == (
        code,
        username,
        sso.issuer,
    )


def test_groups_claim_turning_bad_for_a_known_person_keeps_them_out(sso: Any, client: Any) -> None:
    sign_in(client, "mo")
    user = signed_in_user(client)
    client.post(reverse("account_logout"))
    sso.set_users({"mo": {"email": "mo@example.test", "groups": "sso-auditors"}})

    response = sign_in(client, "mo")

    assert_clear_failure(response, client, HTTPStatus.FORBIDDEN, "is not a list")
    assert role_for(get_user_model().objects.get(pk=user.pk)) is Role.AUDITOR


def test_cancelled_sign_in_is_recorded_and_leaves_no_session(sso: Any, client: Any) -> None:
    response = sign_in(client, "erin", abort=True)

    assert response.status_code == HTTPStatus.OK
    assert signed_in_user(client) is None
    event = AuditEvent.objects.get(action="sign_in", outcome="failed")
    assert event.error_code == "cancelled" and event.detail["idp_error"] == "access_denied"


def test_claims_groups_configurable_name(sso: Any, client: Any, settings: Any) -> None:
    providers = settings.SOCIALACCOUNT_PROVIDERS
    providers["openid_connect"]["APPS"][0]["settings"]["groups_claim"] = "roles"
    settings.SOCIALACCOUNT_PROVIDERS = providers

    response = sign_in(client, "erin")

    assert_clear_failure(response, client, HTTPStatus.FORBIDDEN, "sent no “roles” claim")


# --------------------------------------------------------------------------------------------
# Sessions and the audit of signing in and out


def test_sign_out_ends_the_session_and_is_recorded(sso: Any, client: Any) -> None:
    sign_in(client, "erin")
    key = client.session.session_key

    response = client.post(reverse("account_logout"))

    assert response.status_code == HTTPStatus.FOUND
    assert not Session.objects.filter(session_key=key).exists()
    assert client.get(reverse("secrets_admin:secret_list")).status_code == HTTPStatus.FOUND
    assert audit_actions() == ["sign_in", "sign_out"]
    assert AuditEvent.objects.get(action="sign_out").detail == {"reason": "signed_out"}


def test_sign_out_needs_a_post(as_user: Any, engineer: Any) -> None:
    client = as_user(engineer)

    client.get(reverse("account_logout"))

    assert client.get(reverse("secrets_admin:secret_list")).status_code == HTTPStatus.OK


def _age_session(client: Any, key: str, seconds: int) -> None:
    session = client.session
    session[key] = int(time.time()) - seconds
    session.save()


def test_idle_session_is_ended(as_user: Any, engineer: Any, settings: Any) -> None:
    client = as_user(engineer)
    client.get(reverse("secrets_admin:secret_list"))
    _age_session(client, IDLE_KEY, settings.PORTAL_SESSION_IDLE_TIMEOUT + 5)

    response = client.get(reverse("secrets_admin:secret_list"))

    assert response.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in response["Location"]
    assert AuditEvent.objects.get(action="sign_out").detail == {"reason": "idle_timeout"}


def test_active_session_is_ended_at_its_maximum_age(
    as_user: Any, engineer: Any, settings: Any
) -> None:
    client = as_user(engineer)
    assert isinstance(client.session.get(SIGNED_IN_KEY), int)
    client.get(reverse("secrets_admin:secret_list"))
    _age_session(client, SIGNED_IN_KEY, settings.SESSION_COOKIE_AGE + 5)  # active, but too old

    response = client.get(reverse("secrets_admin:secret_list"))

    assert response.status_code == HTTPStatus.FOUND
    assert AuditEvent.objects.get(action="sign_out").detail == {"reason": "max_age"}


def test_session_within_both_limits_stays(as_user: Any, engineer: Any, settings: Any) -> None:
    client = as_user(engineer)
    client.get(reverse("secrets_admin:secret_list"))
    _age_session(client, IDLE_KEY, settings.PORTAL_SESSION_IDLE_TIMEOUT - 60)
    _age_session(client, SIGNED_IN_KEY, settings.SESSION_COOKIE_AGE - 60)

    assert client.get(reverse("secrets_admin:secret_list")).status_code == HTTPStatus.OK


def test_failed_password_sign_in_is_recorded_without_the_password(
    client: Any, engineer: Any
) -> None:
    client.post(reverse("account_login"), {"login": engineer.username, "password": "wrong-pw-81"})

    event = AuditEvent.objects.get(action="sign_in", outcome="failed")
    assert (event.actor_provider, event.actor_subject, event.error_code) == (
        "local",
        engineer.username,
        "bad_credentials",
    )
    assert "wrong-pw-81" not in str(AuditEvent.objects.values().get())


def test_password_sign_in_of_a_demo_user_is_recorded(client: Any, engineer: Any) -> None:
    client.post(
        reverse("account_login"), {"login": engineer.username, "password": engineer.username}
    )

    event = AuditEvent.objects.get(action="sign_in", outcome="succeeded")
    assert (event.actor_provider, event.actor_subject) == ("local", engineer.username)
    assert event.detail == {"method": "password", "role": "engineer"}


def test_nobody_can_sign_up_locally(client: Any) -> None:
    form = {"username": "mallory", "password1": "Pw-12345678!x", "password2": "Pw-12345678!x"}

    response = client.post(reverse("account_signup"), form)

    assert response.status_code == HTTPStatus.OK
    assert "closed" in response.content.decode().lower()
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_a_second_identity_cannot_be_attached_to_a_user(sso: Any, client: Any) -> None:
    sign_in(client, "erin")
    erin = signed_in_user(client)

    response = sign_in(client, "audrey", post_data={"process": "connect"})

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "cannot be attached" in response.content.decode()
    assert list(SocialAccount.objects.values_list("uid", flat=True)) == ["erin"]
    assert (
        AuditEvent.objects.get(action="sign_in", outcome="failed").error_code == "connect_refused"
    )
    assert SocialAccount.objects.get(uid="erin").user_id == erin.pk
