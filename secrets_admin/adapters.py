"""django-allauth adapters: local accounts only in demo mode; SSO users and their roles.

Sign-in through the identity provider (``SocialAccountAdapter``), at *every* login:

1. The groups claim (``groups_claim`` of the provider app, default ``PORTAL_GROUPS_CLAIM`` =
   ``groups``) is read from the userinfo response, else from the ID token (OIDC), or from the
   assertion's attributes (SAML). Missing, not a list, or not a list of strings -> the sign-in
   is refused with a clear page (:func:`sso_error_response`); no user, no session.
2. The groups become roles through ``PORTAL_ROLE_GROUPS`` (``permissions.roles_for_groups``)
   and replace the user's portal groups (``permissions.set_role``); the groups the access rules
   name are remembered as ``idp:<group>`` (``permissions.set_idp_groups``), which scoped rules
   read. No mapped group and no rule -> the person signs in and sees the no-access page.
3. SSO never makes anyone staff or superuser.

The identity kept for a user is allauth's ``SocialAccount``: ``provider`` (our provider id),
``uid`` (the IdP's subject), ``extra_data`` (claims: email, name, groups; never tokens, since
``SOCIALACCOUNT_STORE_TOKENS`` is off) plus ``portal_issuer``, which :func:`audit.identity_of` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NoReturn

import requests
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base import AuthError, AuthProcess
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import audit
from .permissions import roles_for_groups, set_idp_groups, set_role

log = logging.getLogger(__name__)

ISSUER_KEY = "portal_issuer"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Nobody signs up with a local account: demo users are made by ``manage.py demo``,
        everyone else comes through SSO (whose first login the social adapter allows)."""
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return str(super().get_login_redirect_url(request))


def local_login_enabled() -> bool:
    """Password sign-in exists only in demo mode and tests (``SOCIALACCOUNT_ONLY`` otherwise)."""
    return bool(settings.PORTAL_DEMO or settings.TESTING)


# --------------------------------------------------------------------------------------------
# Claims


class ClaimsProblem(Exception):
    """The identity provider's answer cannot give a role; ``code`` is recorded, ``message`` shown."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def groups_claim_name(app_settings: Mapping[str, Any]) -> str:
    """The claim (OIDC) or attribute (SAML) that lists a person's groups for this provider."""
    return str(app_settings.get("groups_claim") or settings.PORTAL_GROUPS_CLAIM)


def groups_from(extra_data: Mapping[str, Any], claim: str) -> list[str]:
    """The groups in ``extra_data`` under ``claim``; raises :class:`ClaimsProblem` when unusable.

    OIDC ``extra_data`` is ``{"userinfo": {...}, "id_token": {...}}``: userinfo wins when it has
    the claim (allauth prefers it too), else the ID token. SAML ``extra_data`` is the assertion's
    attributes, each a list of strings.
    """
    sources = [extra_data.get("userinfo"), extra_data.get("id_token")]
    claims = [s for s in sources if isinstance(s, Mapping)] or [extra_data]
    for source in claims:
        if claim in source:
            value = source[claim]
            break
    else:
        raise ClaimsProblem(
            "groups_claim_missing",
            f"The identity provider sent no “{claim}” claim, so the portal cannot tell your "
            "role. Ask your identity-provider administrators to release the groups claim to "
            "Secrets Portal (and to request the groups scope).",
        )
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise ClaimsProblem(
            "groups_claim_not_a_list",
            f"The identity provider's “{claim}” claim is not a list of group names, so the portal "
            "cannot tell your role. Ask your identity-provider administrators to send it as a "
            "list.",
        )
    return value


def issuer_of(sociallogin: SocialLogin) -> str:
    """Who vouches for this identity: the ID token's ``iss`` (OIDC) or the IdP's entity id (SAML)."""
    data = sociallogin.account.extra_data or {}
    id_token = data.get("id_token")
    if isinstance(id_token, Mapping) and id_token.get("iss"):
        return str(id_token["iss"])
    app_settings = sociallogin.provider.app.settings if sociallogin.provider else {}
    idp = app_settings.get("idp") or {}
    return str(idp.get("entity_id") or app_settings.get("server_url") or "")


def sso_error_response(
    request: HttpRequest, message: str, *, status: int = HTTPStatus.FORBIDDEN
) -> HttpResponse:
    """The page for a refused or failed SSO sign-in: the cause and what to do, nothing else."""
    return render(
        request, "socialaccount/authentication_error.html", {"sso_problem": message}, status=status
    )


# --------------------------------------------------------------------------------------------
# The social account adapter


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        """A person's first SSO sign-in creates their user (the account adapter stays closed)."""
        return True

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: Any) -> Any:
        user = super().populate_user(request, sociallogin, data)
        user.is_staff = False
        user.is_superuser = False
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Check the claims and, for a known person, recompute the roles before they sign in.

        Raises ``ImmediateHttpResponse`` (the error page, audited as ``login.failed``) when the
        groups claim is unusable or when someone tries to attach a second identity.
        """
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            self._refuse(
                request,
                sociallogin,
                "connect_refused",
                "Sign-in identities are managed by your identity provider; another one cannot "
                "be attached here.",
            )
        groups = self._groups(request, sociallogin)
        data = sociallogin.account.extra_data
        data[ISSUER_KEY] = issuer_of(sociallogin)
        if sociallogin.is_existing:
            sociallogin.account.save(update_fields=["extra_data"])
            self._apply(sociallogin.user, groups)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> Any:
        """First sign-in: create the user, then give the roles its groups map to."""
        user = super().save_user(request, sociallogin, form)
        self._apply(user, self._groups(request, sociallogin))
        return user

    def validate_disconnect(self, account: Any, accounts: Any) -> None:
        raise ValidationError("Sign-in identities are managed by your identity provider.")

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        """Record ``login.failed`` (provider, error code, exception class; never its text) and
        give allauth's error page a sentence about the cause."""
        code = failure_code(error, exception, extra_context)
        record_login_failed(
            request,
            provider=getattr(provider, "sub_id", ""),
            code=code,
            idp_error=request.GET.get("error", ""),
        )
        if extra_context is not None:
            extra_context["sso_problem"] = AUTH_ERROR_MESSAGES.get(
                code, AUTH_ERROR_MESSAGES[AuthError.UNKNOWN]
            )

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _apply(user: Any, groups: list[str]) -> None:
        """Global roles from ``PORTAL_ROLE_GROUPS``; the groups scoped rules name."""
        set_role(user, roles_for_groups(groups))
        set_idp_groups(user, groups)

    def _groups(self, request: HttpRequest, sociallogin: SocialLogin) -> list[str]:
        app_settings = sociallogin.provider.app.settings if sociallogin.provider else {}
        try:
            groups = groups_from(
                sociallogin.account.extra_data or {}, groups_claim_name(app_settings)
            )
        except ClaimsProblem as problem:
            self._refuse(request, sociallogin, problem.code, problem.message)
        return groups

    def _refuse(
        self, request: HttpRequest, sociallogin: SocialLogin, code: str, message: str
    ) -> NoReturn:
        account = sociallogin.account
        data = account.extra_data or {}
        record_login_failed(
            request,
            provider=account.provider,
            code=code,
            subject=account.uid,
            issuer=issuer_of(sociallogin),
            email=str(_claim(data, "email") or "")[:254],
        )
        raise ImmediateHttpResponse(sso_error_response(request, message))


def failure_code(error: Any, exception: Any, extra_context: Any) -> str:
    """A short code for why allauth gave up: recorded in the audit event, picks the message."""
    if isinstance(exception, requests.RequestException):
        return "idp_unreachable"
    if isinstance(exception, OAuth2Error):
        return "code_rejected"
    if exception is not None:
        return type(exception).__name__
    if extra_context and "state_id" in extra_context:
        return "state_mismatch"
    return str(error or AuthError.UNKNOWN)


AUTH_ERROR_MESSAGES = {
    AuthError.UNKNOWN: "Sign-in through the identity provider did not complete. Start again "
    "from the sign-in page; if it happens again, tell the portal's operators (the time is in "
    "the audit log).",
    "state_mismatch": "This sign-in response does not belong to a sign-in started in this "
    "browser (it may be old, or opened in another browser). Start again from the sign-in page.",
    "idp_unreachable": "The identity provider could not be reached, so nobody can sign in right "
    "now. Try again in a few minutes; if it persists, tell the portal's operators.",
    "code_rejected": "The identity provider refused the sign-in code (it was used already or has "
    "expired). Start again from the sign-in page.",
    AuthError.DENIED: "The identity provider denied the sign-in. Ask its administrators whether "
    "you are assigned to Secrets Portal.",
}


def _claim(data: Mapping[str, Any], name: str) -> Any:
    for source in (data.get("userinfo"), data.get("id_token"), data):
        if isinstance(source, Mapping) and name in source:
            value = source[name]
            return value[0] if isinstance(value, list) and value else value
    return None


def record_login_failed(
    request: HttpRequest,
    *,
    provider: str,
    code: str,
    subject: str = "",
    issuer: str = "",
    email: str = "",
    method: str = "sso",
    idp_error: str = "",
) -> None:
    """Append ``login.failed``; an audit outage is logged, not shown (the sign-in fails anyway)."""
    context = audit.Context.from_request(request)
    context.user = None
    context.extra_actor = {
        "actor_provider": provider[:200],
        "actor_subject": subject[:255],
        "actor_issuer": issuer[:500],
        "actor_email": email,
    }
    try:
        audit.record(
            audit.AuditAction.SIGN_IN,
            context=context,
            outcome=audit.Outcome.FAILED,
            error_code=code[:100],
            detail={"method": method, **({"idp_error": idp_error[:100]} if idp_error else {})},
        )
    except audit.AuditUnavailable:
        log.error("sign-in failure of provider=%s code=%s not audited", provider, code)
