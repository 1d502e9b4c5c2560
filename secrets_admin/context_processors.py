from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from .adapters import local_login_enabled
from .permissions import Action, can, role_for


def portal(request: HttpRequest) -> dict[str, Any]:
    """Role and capability flags for templates (display only: views check access themselves).

    An error page may render before ``AuthenticationMiddleware`` ran (a ``Host`` header outside
    ``ALLOWED_HOSTS`` fails in ``CommonMiddleware``, earlier in the list): no ``request.user``
    there, so such a page is rendered as for an anonymous visitor.
    """
    user = getattr(request, "user", None) or AnonymousUser()
    return {
        "portal_demo": settings.PORTAL_DEMO,
        "local_login_enabled": local_login_enabled(),
        "portal_access_contact": settings.PORTAL_ACCESS_CONTACT,
        "portal_role": role_for(user).label if user.is_authenticated else "",
        "can_view": can(user, Action.VIEW),
        "can_reveal": can(user, Action.REVEAL),
        "can_edit": can(user, Action.EDIT),
        "can_approve": can(user, Action.APPROVE),
        "can_create_secret": can(user, Action.ADMINISTER_SECRETS),
        # editing: approvers' "waiting for me" count, queried only when a page shows it
        "waiting_for_me": (lambda: _waiting_for(user)) if can(user, Action.APPROVE) else 0,
    }


def _waiting_for(user: Any) -> int:
    from .reads import change_requests_for  # reads imports the models: not at app loading

    return change_requests_for(user, waiting=True).count()
