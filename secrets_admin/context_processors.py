from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from .adapters import local_login_enabled
from .permissions import Action, Role, can, role_for, scope_of, secret_in_url


def portal(request: HttpRequest) -> dict[str, Any]:
    """Role and capability flags for templates (display only: views check access themselves);
    on a page whose URL names a secret (or its change request), for that secret.

    An error page may render before ``AuthenticationMiddleware`` ran (a ``Host`` header outside
    ``ALLOWED_HOSTS`` fails in ``CommonMiddleware``, earlier in the list): no ``request.user``
    there, so such a page is rendered as for an anonymous visitor.
    """
    user = getattr(request, "user", None) or AnonymousUser()
    # On a page about one secret, the flags answer for that secret (access scopes).
    secret = None
    match = getattr(request, "resolver_match", None)
    if (
        match is not None
        and match.app_name == "secrets_admin"
        and user.is_authenticated
        and not scope_of(user).unrestricted(Role.ADMIN)
    ):
        secret = secret_in_url(user, match.kwargs, url_name=match.url_name or "") or None
    return {
        "portal_demo": settings.PORTAL_DEMO,
        "local_login_enabled": local_login_enabled(),
        "portal_access_contact": settings.PORTAL_ACCESS_CONTACT,
        "portal_role": role_for(user).label if user.is_authenticated else "",
        "can_view": can(user, Action.VIEW),
        "can_reveal": can(user, Action.REVEAL, secret),
        "can_edit": can(user, Action.EDIT, secret),
        "can_approve": can(user, Action.APPROVE, secret),
        "can_create_secret": can(user, Action.ADMINISTER_SECRETS),
        # editing: approvers' "waiting for me" count, queried only when a page shows it
        "waiting_for_me": (lambda: _waiting_for(user)) if can(user, Action.APPROVE) else 0,
    }


def _waiting_for(user: Any) -> int:
    from .reads import change_requests_for  # reads imports the models: not at app loading

    return change_requests_for(user, waiting=True).count()
