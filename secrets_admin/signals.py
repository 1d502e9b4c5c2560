"""Audit events for signing in and out, and the sign-in time of a session.

* ``login.succeeded``: allauth's ``user_logged_in`` (password sign-in in demo mode, and SSO),
  with the method, provider and the role the person now holds.
* ``login.failed``: Django's ``user_login_failed`` for a password (the username tried, never
  the password); SSO failures are recorded by ``adapters.SocialAccountAdapter``.
* ``logout``: Django's ``user_logged_out``, with the reason (signed out, idle, too old).

An audit outage does not block signing in or out (the error is logged); it does block every
change and reveal (``audit.attempt``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from allauth.account.signals import user_logged_in as allauth_user_logged_in
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from . import audit
from .adapters import record_login_failed
from .middleware import LOGOUT_REASON_ATTR, SIGNED_IN_KEY
from .permissions import role_for
from .scopes import IDP_GROUP_PREFIX

log = logging.getLogger(__name__)


def _record(action: str, request: HttpRequest, user: Any, **fields: Any) -> None:
    context = audit.Context.from_request(request)
    context.user = user
    try:
        audit.record(action, context=context, **fields)
    except audit.AuditUnavailable:
        log.error("%s of user id=%s not audited", action, getattr(user, "pk", None))


@receiver(user_logged_in, dispatch_uid="portal_stamp_sign_in")
def stamp_sign_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Start the absolute session lifetime (``middleware.PortalMiddleware``) at sign-in."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_KEY] = int(time.time())


@receiver(allauth_user_logged_in, dispatch_uid="portal_audit_sign_in")
def audit_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    sociallogin = kwargs.get("sociallogin")
    detail: dict[str, Any] = {
        "method": "sso" if sociallogin is not None else "password",
        "role": role_for(user).label,
    }
    # The identity-provider groups scoped access rules matched at this sign-in (names only).
    groups = sorted(
        g.removeprefix(IDP_GROUP_PREFIX)
        for g in user.groups.filter(name__startswith=IDP_GROUP_PREFIX).values_list(
            "name", flat=True
        )
    )
    if groups:
        detail["groups"] = groups
    _record(
        audit.AuditAction.SIGN_IN, request, user, outcome=audit.Outcome.SUCCEEDED, detail=detail
    )


@receiver(user_login_failed, dispatch_uid="portal_audit_password_failure")
def audit_password_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if request is None:
        return
    username = str(credentials.get("username") or credentials.get("login") or "")[:150]
    record_login_failed(
        request, provider="local", code="bad_credentials", subject=username, method="password"
    )


@receiver(user_logged_out, dispatch_uid="portal_audit_sign_out")
def audit_sign_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or user is None:
        return
    reason = getattr(request, LOGOUT_REASON_ATTR, "signed_out")
    _record(
        audit.AuditAction.SIGN_OUT,
        request,
        user,
        outcome=audit.Outcome.SUCCEEDED,
        detail={"reason": reason},
    )
