"""Roles and access checks (ASVS 5.0 8.2.1, 8.3.1: checked on the server).

Roles are ordered: each includes the rights of the ones before it.

=========  =====================================================================================
auditor    list, masked grid, diffs, history, change requests, audit log, export, verify
engineer   + reveal values, edit unprotected environments, propose change requests
approver   + approve or reject other people's change requests (and reveal what they review)
admin      + create secrets, import legacy secrets and .env files
=========  =====================================================================================

A user's role is held as membership of a Django group named ``portal:<role>``; SSO logins
recompute it from the identity provider's groups claim (``adapters.py``). It is read from the
database on every request, so a change applies at once (ASVS 5.0 8.3.2).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render


class Role(enum.IntEnum):
    NONE = 0
    AUDITOR = 1
    ENGINEER = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def group_name(self) -> str:
        return f"portal:{self.label}"


ASSIGNABLE_ROLES = (Role.AUDITOR, Role.ENGINEER, Role.APPROVER, Role.ADMIN)


class Action(enum.StrEnum):
    VIEW = "view"  # list, grid (masked), diff, history, change requests, audit log, export
    REVEAL = "reveal"
    EDIT = "edit"
    PROPOSE = "propose"
    APPROVE = "approve"
    ADMINISTER_SECRETS = "administer_secrets"  # nosec B105 # an action name
    # (creating, undeleting, migrating secrets, scheduling legacy deletions, break-glass)


#: The least role that may perform each action.
MINIMUM_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.AUDITOR,
    Action.REVEAL: Role.ENGINEER,
    Action.EDIT: Role.ENGINEER,
    Action.PROPOSE: Role.ENGINEER,
    Action.APPROVE: Role.APPROVER,
    Action.ADMINISTER_SECRETS: Role.ADMIN,
}

_CACHE_ATTR = "_portal_role"


def role_for(user: AbstractBaseUser | AnonymousUser) -> Role:
    """The user's highest role (``Role.NONE`` when signed out or in no portal group).

    Superusers get no implicit role: SSO never grants superuser, and a local superuser is an
    operator of the Django admin, not a portal user.
    """
    if not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return Role(cached)
    names = set(Group.objects.filter(user=user).values_list("name", flat=True))  # type: ignore[misc]
    role = max((r for r in ASSIGNABLE_ROLES if r.group_name in names), default=Role.NONE)
    setattr(user, _CACHE_ATTR, int(role))
    return role


def can(user: AbstractBaseUser | AnonymousUser, action: Action | str) -> bool:
    """Whether ``user`` may perform ``action`` at all (environment checks are separate)."""
    return role_for(user) >= MINIMUM_ROLE[Action(action)]


def set_role(user: AbstractBaseUser, roles: Iterable[Role]) -> Role:
    """Make the user's portal groups exactly ``roles`` (other groups untouched); return the highest."""
    wanted = {r.group_name for r in roles if r is not Role.NONE}
    groups = user.groups  # type: ignore[attr-defined]
    for group in groups.filter(name__startswith="portal:"):
        if group.name not in wanted:
            groups.remove(group)
    for name in wanted:
        groups.add(Group.objects.get_or_create(name=name)[0])
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)
    return max(roles, default=Role.NONE)


def roles_for_groups(groups: Iterable[str]) -> set[Role]:
    """The roles an identity provider's ``groups`` give through ``PORTAL_ROLE_GROUPS``.

    ``groups``: group names (or ids) exactly as the IdP sends them; matching is exact and
    case-sensitive. Groups not in the mapping are ignored; no mapped group -> empty set (the
    person signs in and sees the no-access page). Never grants superuser or staff.
    """
    mapping: dict[str, str] = settings.PORTAL_ROLE_GROUPS
    return {Role[mapping[g].upper()] for g in groups if g in mapping}


def is_protected(environment: str) -> bool:
    """Whether edits to ``environment`` need a change request (``PORTAL_PROTECTED_ENVIRONMENTS``,
    default ``main``; shell-style patterns such as ``prod*`` allowed)."""
    return any(
        fnmatch.fnmatchcase(environment, pattern)
        for pattern in settings.PORTAL_PROTECTED_ENVIRONMENTS
    )


V = TypeVar("V", bound=Callable[..., HttpResponseBase])


def require(action: Action | str) -> Callable[[V], V]:
    """View decorator: anonymous -> sign-in redirect; signed in without the role -> 403 page.

    The 403 for a person with no role at all is the "no access" page saying whom to ask.
    """

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not can(user, action):
                if role_for(user) is Role.NONE:
                    return render(request, "secrets_admin/no_access.html", status=403)
                raise PermissionDenied(f"Your role may not {Action(action).value} here.")
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
