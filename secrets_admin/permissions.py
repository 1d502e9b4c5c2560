"""Roles, scopes and access checks (README "Access rules"; ASVS 5.0 8.2.1, 8.2.2,
8.3.1: checked on the server, per object).

Roles are ordered: each includes the rights of the ones before it.

=========  =====================================================================================
auditor    list, masked grid, diffs, history, change requests, audit log, export, verify
engineer   + reveal values, edit unprotected environments, propose change requests
approver   + approve or reject other people's change requests (and reveal what they review)
admin      + create secrets, import legacy secrets and .env files
=========  =====================================================================================

Where a person's roles come from, both read from the database on every request so a change
applies at once (ASVS 5.0 8.3.2):

* a **global role**: membership of the Django group ``portal:<role>``; SSO sign-ins set it from
  ``PORTAL_ROLE_GROUPS`` (a rule on every secret), demo users and test personas hold it directly;
* **scoped roles**: the access rules (``scopes``) matching the person's identity-provider groups,
  remembered at each SSO sign-in as Django groups ``idp:<group>`` (only groups some rule names).

A secret outside a person's scope does not exist for them: :func:`visible_secrets` and
:func:`visible_rows` filter every list, :func:`can` answers per secret and environment.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from . import scopes
from .scopes import ASSIGNABLE_ROLES, IDP_GROUP_PREFIX, AccessRules, RevealPolicy, Role, Scope

if TYPE_CHECKING:
    from . import errors

__all__ = ["ASSIGNABLE_ROLES", "Action", "RevealPolicy", "Role", "can", "role_for", "set_role"]

log = logging.getLogger(__name__)


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

_CACHE_ATTR = "_portal_scope"


class NamedSecret(Protocol):
    """Anything with a secret's ``name`` and AWS ``tags`` (``aws.SecretMeta``)."""

    @property
    def name(self) -> str: ...

    @property
    def tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class TaggedName:
    """A secret's name and AWS tags, where no listing entry is at hand (e.g. cached reports)."""

    name: str
    tags: Mapping[str, str] = field(default_factory=dict)


#: A secret as the checks accept it: its name (tags then come from the cached listing), or its
#: listing metadata (tags included).
SecretRef = str | NamedSecret

# --------------------------------------------------------------------------------------------
# The deployment's rules

_loaded: dict[tuple[Any, ...], AccessRules] = {}


def access_rules() -> AccessRules:
    """The access rules in force: ``PORTAL_ACCESS_FILE`` or ``PORTAL_ACCESS_RULES`` plus the
    global mapping ``PORTAL_ROLE_GROUPS``. Read once (at start, by ``apps.py``) per setting
    values. Raises :class:`scopes.AccessRulesError` (an ``ImproperlyConfigured``) when invalid.
    """
    key = (
        getattr(settings, "PORTAL_ACCESS_FILE", ""),
        getattr(settings, "PORTAL_ACCESS_RULES", ""),
        tuple(sorted(settings.PORTAL_ROLE_GROUPS.items())),
    )
    rules = _loaded.get(key)
    if rules is None:
        rules = scopes.load(file=key[0], rules_json=key[1], role_groups=dict(key[2]))
        _loaded.clear()  # one configuration at a time; tests that change settings re-read
        _loaded[key] = rules
    return rules


def is_protected(environment: str) -> bool:
    """Whether edits to ``environment`` need a change request (``PORTAL_PROTECTED_ENVIRONMENTS``,
    default ``main``; shell-style patterns such as ``prod*`` allowed)."""
    return any(
        fnmatch.fnmatchcase(environment, pattern)
        for pattern in settings.PORTAL_PROTECTED_ENVIRONMENTS
    )


def reveal_policy(environment: str) -> RevealPolicy | None:
    """How a reveal in ``environment`` is governed: ``None`` when it is not protected (no
    reason asked), else the access rules' ``[reveal]`` policy (default ``reason``)."""
    if not is_protected(environment):
        return None
    return access_rules().reveal_policy(environment)


def reveal_needs_reason(environment: str) -> bool:
    """Whether revealing a value of ``environment`` asks for a reason (protected, not denied)."""
    return reveal_policy(environment) in (RevealPolicy.REASON, RevealPolicy.APPROVER)


# --------------------------------------------------------------------------------------------
# A person's scope


def scope_of(user: AbstractBaseUser | AnonymousUser) -> Scope:
    """The rules that apply to ``user`` (empty when signed out or inactive). One query per
    request: the result is kept on the user object.

    Superusers get no implicit role: SSO never grants superuser, and a local superuser is an
    operator of the Django admin, not a portal user.
    """
    if not user.is_authenticated or not user.is_active:
        return Scope(())
    rules = access_rules()
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None and cached[0] is rules:
        return cached[1]
    names = set(Group.objects.filter(user=user).values_list("name", flat=True))  # type: ignore[misc]
    global_role = max((r for r in ASSIGNABLE_ROLES if r.group_name in names), default=Role.NONE)
    idp = {n.removeprefix(IDP_GROUP_PREFIX) for n in names if n.startswith(IDP_GROUP_PREFIX)}
    scope = rules.scope_for(idp, global_role=global_role)
    setattr(user, _CACHE_ATTR, (rules, scope))
    return scope


def role_for(user: AbstractBaseUser | AnonymousUser) -> Role:
    """The user's highest role on anything (``Role.NONE`` when signed out or in no rule)."""
    return scope_of(user).highest


def _forget(user: AbstractBaseUser) -> None:
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def set_role(user: AbstractBaseUser, roles: Iterable[Role]) -> Role:
    """Make the user's global portal groups exactly ``roles`` (other groups untouched); return
    the highest."""
    roles = list(roles)
    wanted = {r.group_name for r in roles if r is not Role.NONE}
    groups = user.groups  # type: ignore[attr-defined]
    for group in groups.filter(name__startswith="portal:"):
        if group.name not in wanted:
            groups.remove(group)
    for name in wanted:
        groups.add(Group.objects.get_or_create(name=name)[0])
    _forget(user)
    return max(roles, default=Role.NONE)


def set_idp_groups(user: AbstractBaseUser, idp_groups: Iterable[str]) -> list[str]:
    """Remember the person's identity-provider groups that some access rule names (as Django
    groups ``idp:<group>``), replacing the ones remembered before; return them, sorted.

    Groups no rule names are not stored (data minimisation; a rule added later applies from the
    person's next sign-in, as for ``PORTAL_ROLE_GROUPS``).
    """
    keep = sorted(set(idp_groups) & access_rules().rule_groups)
    wanted = {IDP_GROUP_PREFIX + g for g in keep}
    groups = user.groups  # type: ignore[attr-defined]
    for group in groups.filter(name__startswith=IDP_GROUP_PREFIX):
        if group.name not in wanted:
            groups.remove(group)
    for name in wanted:
        groups.add(Group.objects.get_or_create(name=name)[0])
    _forget(user)
    return keep


def roles_for_groups(groups: Iterable[str]) -> set[Role]:
    """The roles an identity provider's ``groups`` give through ``PORTAL_ROLE_GROUPS``.

    ``groups``: group names (or ids) exactly as the IdP sends them; matching is exact and
    case-sensitive. Groups not in the mapping are ignored; no mapped group -> empty set (the
    person signs in and sees the no-access page). Never grants superuser or staff.
    """
    mapping: dict[str, str] = settings.PORTAL_ROLE_GROUPS
    return {Role[mapping[g].upper()] for g in groups if g in mapping}


# --------------------------------------------------------------------------------------------
# Secrets and their tags (from the cached listing: no AWS call per check)

#: This process's tags by secret, for the listing ``(fetched_at, revision)`` they were read from.
_tag_memo: tuple[tuple[float, int], dict[str, Mapping[str, str]]] | None = None


def secret_tags(name: str) -> Mapping[str, str]:
    """The AWS tags of secret ``name`` as the cached listing saw them (``{}`` when it is not
    listed, or the listing cannot be had: tag rules then do not match, failing closed).

    Tags change scope at the next listing refresh (``PORTAL_LIST_CACHE_SECONDS``); a secret the
    portal created is in scope as soon as the listing lists it (its write-through, which gives
    the listing a new revision). A cold cache is filled by one listing of the account, as the
    list page would.
    """
    from . import aws, listing

    global _tag_memo
    try:
        current = listing.get_listing()
    except aws.AwsError as exc:
        log.warning("tags of %s unknown: the listing failed (%s)", name, exc.code)
        return {}
    memo = _tag_memo
    seen = (current.fetched_at, current.revision)
    if memo is None or memo[0] != seen:
        memo = (seen, {m.name: m.tags for m in current.secrets})
        _tag_memo = memo
    return memo[1].get(name, {})


def _name_and_tags(secret: SecretRef) -> tuple[str, scopes.Tags]:
    if isinstance(secret, str):
        return secret, lambda: secret_tags(secret)
    return secret.name, secret.tags


def can(
    user: AbstractBaseUser | AnonymousUser,
    action: Action | str,
    secret: SecretRef | None = None,
    environment: str | None = None,
) -> bool:
    """Whether ``user`` may perform ``action`` on ``secret`` in ``environment``.

    ``secret=None``: on some secret ("at all": what the navigation and the role decorators ask),
    except for admin actions, which then need the admin role on every secret (they create or
    delete secrets no scope holds yet); ``environment=None``: in some environment. A reveal in a protected environment follows its
    reveal policy: ``deny`` refuses everyone, ``approver`` asks for the approver role.
    """
    action = Action(action)
    minimum = MINIMUM_ROLE[action]
    if action is Action.REVEAL and environment is not None:
        policy = reveal_policy(environment)
        if policy is RevealPolicy.DENY:
            return False
        if policy is RevealPolicy.APPROVER:
            minimum = max(minimum, Role.APPROVER)
    scope = scope_of(user)
    if secret is None and minimum >= Role.ADMIN:
        # Account-wide administration (creating secrets, migrating and deleting legacy ones)
        # names secrets no scope holds yet: it needs the admin role on every secret.
        return scope.unrestricted(Role.ADMIN)
    if secret is None:
        return scope.role(None, None, environment) >= minimum
    name, tags = _name_and_tags(secret)
    return scope.role(name, tags, environment) >= minimum


def may_approve(
    user: AbstractBaseUser | AnonymousUser, secret: SecretRef, environments: Iterable[str]
) -> bool:
    """Whether ``user``'s scope lets them approve a request on ``secret`` touching
    ``environments``: the approver role on the secret in *every* one of them."""
    envs = list(environments)
    if not envs:
        return can(user, Action.APPROVE, secret)
    return all(can(user, Action.APPROVE, secret, env) for env in envs)


def require_on(
    user: AbstractBaseUser | AnonymousUser | None,
    action: Action | str,
    secret: SecretRef,
    environments: Iterable[str],
) -> None:
    """Raise :class:`~secrets_admin.errors.Forbidden` unless ``user`` may perform ``action`` on
    ``secret`` in every one of ``environments`` (the message names the ones not covered)."""
    from . import errors

    envs = sorted(set(environments))
    if user is None:
        raise errors.Forbidden("Only a signed-in person may change secrets.")
    refused = [e for e in envs if not can(user, action, secret, e)]
    if refused or (not envs and not can(user, action, secret)):
        where = ", ".join(refused) or "this secret"
        raise errors.Forbidden(
            f"Your access rules do not let you {Action(action).value} {where} here. Ask "
            f"{settings.PORTAL_ACCESS_CONTACT} if you need to."
        )


#: The longest reveal reason kept (characters); the audit column holds the rest of the event.
MAX_REASON_LENGTH = 500


def reveal_refusal(
    user: AbstractBaseUser | AnonymousUser, secret: SecretRef, environment: str, reason: str
) -> errors.PortalError | None:
    """Why ``user`` may not reveal a value of ``secret`` in ``environment`` with ``reason``
    (a :class:`~secrets_admin.errors.PortalError` to answer with), or ``None`` when they may.

    A protected environment's reveal policy applies: ``deny`` refuses everyone (403),
    ``approver`` all but approvers (403), and ``reason``/``approver`` need a reason (400).
    """
    from . import errors

    policy = reveal_policy(environment)
    if policy is RevealPolicy.DENY:
        return errors.Forbidden(
            f"Values of {environment} are never revealed here (reveal policy: deny). Compare "
            "them by fingerprint instead."
        )
    if not can(user, Action.REVEAL, secret, environment):
        needs = "approvers" if policy is RevealPolicy.APPROVER else "engineers"
        return errors.Forbidden(
            f"Only {needs} whose access rules cover {environment} of this secret may reveal its "
            "values."
        )
    if policy is not None and not reason.strip():
        return errors.InvalidInput(
            f"Revealing a value of {environment} needs a reason: say why you need it in the "
            "Reason field, then reveal again. The reason is kept in the audit log."
        )
    if len(reason) > MAX_REASON_LENGTH:
        return errors.InvalidInput(
            f"The reason is longer than {MAX_REASON_LENGTH} characters; shorten it."
        )
    return None


S = TypeVar("S", bound=str | NamedSecret)


def visible_secrets(user: AbstractBaseUser | AnonymousUser, entries: Iterable[S]) -> list[S]:
    """The ``entries`` (names or listing metadata) inside ``user``'s scope, in order.

    Everything else must not exist for the person: not listed, counted, searched or exported.
    """
    scope = scope_of(user)
    if scope.unrestricted(Role.AUDITOR):
        return list(entries)
    out = []
    for entry in entries:
        name, tags = _name_and_tags(entry)
        if scope.role(name, tags) >= Role.AUDITOR:
            out.append(entry)
    return out


def sees_every_secret(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` holds a role on every secret (account-wide counts may be shown)."""
    return scope_of(user).unrestricted(Role.AUDITOR)


def is_visible(user: AbstractBaseUser | AnonymousUser, secret: SecretRef) -> bool:
    """Whether ``secret`` exists for ``user`` (any role on it in some environment)."""
    return can(user, Action.VIEW, secret)


def visible_environments(
    user: AbstractBaseUser | AnonymousUser, secret: SecretRef, environments: Iterable[str]
) -> list[str]:
    """The ``environments`` of ``secret`` that ``user`` may see, in order."""
    return [e for e in environments if can(user, Action.VIEW, secret, e)]


M = TypeVar("M", bound=Any)


def visible_rows(
    user: AbstractBaseUser | AnonymousUser,
    rows: QuerySet[M],
    *,
    field: str = "secret",
    also: Q | None = None,
) -> QuerySet[M]:
    """``rows`` whose ``field`` (a secret name) is inside ``user``'s scope, plus rows matching
    ``also`` (e.g. a person's own events that name no secret). Unrestricted people get ``rows``
    unchanged; others cost one query for the distinct names, none to AWS."""
    scope = scope_of(user)
    if scope.unrestricted(Role.AUDITOR):
        return rows
    names = set(rows.order_by().values_list(field, flat=True).distinct()) - {""}
    allowed = visible_secrets(user, sorted(names))
    keep = Q(**{f"{field}__in": allowed})
    return rows.filter(keep | also if also is not None else keep)


def visible_events(user: AbstractBaseUser | AnonymousUser, events: QuerySet[M]) -> QuerySet[M]:
    """Audit ``events`` ``user`` may see: those about secrets in their scope, and of the events
    about no secret (sign-ins, exports) only their own unless they see every secret."""
    mine = Q(secret="", actor_id=getattr(user, "pk", None))  # nosec B106 - a field name, not a password
    return visible_rows(user, events, also=mine)


def approvers_for(secret: SecretRef, environments: Sequence[str]) -> list[Any]:
    """Active users who may approve a request on ``secret`` touching ``environments`` (global
    approvers and admins, and people whose scoped rules cover every environment)."""
    rules = access_rules()
    approving_groups = {
        IDP_GROUP_PREFIX + g
        for r in rules.rules
        if r.role >= Role.APPROVER and not r.global_mapping
        for g in r.groups
    }
    names = {Role.APPROVER.group_name, Role.ADMIN.group_name} | approving_groups
    users = get_user_model().objects.filter(is_active=True, groups__name__in=names).distinct()
    return [u for u in users.order_by("pk") if may_approve(u, secret, environments)]


def access_summary(secret: SecretRef, environments: Iterable[str]) -> list[tuple[str, str]]:
    """Who may do what on ``secret``, per identity-provider group named by a rule:
    ``[("payments-engineers", "edit sandbox, dev; propose main"), ...]`` (``scopes.AccessRules.
    summary``). People holding a global role directly (demo users) are not groups: not listed."""
    name, tags = _name_and_tags(secret)
    if callable(tags):  # looked up once, and only when some rule tests tags
        tags = functools.cache(tags)
    return access_rules().summary(name, tags, environments, is_protected=is_protected)


# --------------------------------------------------------------------------------------------
# Views

V = TypeVar("V", bound=Callable[..., HttpResponseBase])


def require(action: Action | str) -> Callable[[V], V]:
    """View decorator: anonymous -> sign-in redirect; signed in without the role on anything ->
    403 page; without the role on the secret the URL names (:func:`secret_in_url`) -> 403.
    Per-environment checks happen where the environments are known (saves, reveals).

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
            if not scope_of(user).unrestricted(MINIMUM_ROLE[Action(action)]):
                # Scopes: the role on the URL's secret (ScopeMiddleware answered 404 already
                # when the secret is outside the scope altogether).
                match = request.resolver_match
                secret = secret_in_url(user, kwargs, url_name=(match and match.url_name) or "")
                if secret and not can(user, action, secret):
                    raise PermissionDenied(
                        f"Your role on this secret may not {Action(action).value} here."
                    )
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def visible_secret_names(user: AbstractBaseUser | AnonymousUser) -> frozenset[str] | None:
    """The secrets ``user`` may see in account-wide views answered from the index (hygiene
    pages, their exports): ``None`` for every secret (a role on every secret), else the set of
    names (empty for a person without a role). Tags come from the cached listing, as for every
    scope check: no AWS call per question."""
    if not can(user, Action.VIEW):
        return frozenset()
    if scope_of(user).unrestricted(Role.AUDITOR):
        return None
    from .models import IndexedSecret

    names = IndexedSecret.objects.values_list("name", flat=True)
    return frozenset(visible_secrets(user, list(names)))


class ScopeMiddleware:
    """Out-of-scope secrets do not exist: the one place each request's secret is checked.

    For every portal view whose URL names a secret (``name``), a change request
    (``request_id``) or an audit event (``seq``), a person whose scope does not hold that secret
    gets the same 404 as for a secret that does not exist (never a 403, so names do not leak),
    before the view runs (:func:`require` then checks the role on that secret). People with a role on every secret pass at no cost; signed-out people
    and people with no role at all are left to the view's :func:`require` (sign-in redirect,
    no-access page). Lists are filtered by the views (:func:`visible_secrets`,
    :func:`visible_rows`); per-environment rights by :func:`can` where the environment is known.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Sequence[Any],
        view_kwargs: Mapping[str, Any],
    ) -> HttpResponseBase | None:
        match = request.resolver_match
        user = request.user
        if match is None or match.app_name != "secrets_admin" or not user.is_authenticated:
            return None
        scope = scope_of(user)
        if scope.highest is Role.NONE or scope.unrestricted(Role.AUDITOR):
            return None  # the view's own decorator answers (sign-in, no-access page)
        secret = secret_in_url(user, view_kwargs, url_name=match.url_name or "")
        if secret is None or (secret and is_visible(user, secret)):
            return None
        if "name" not in view_kwargs:
            # As for a change request or event that does not exist; never the secret's name.
            raise Http404("Not found")
        return out_of_scope_response(request, secret)


#: URL names whose ``pk`` is a change request's id (the others name it ``request_id``).
CHANGE_REQUEST_PK_URLS = frozenset({"audit_evidence"})


def secret_in_url(user: Any, kwargs: Mapping[str, Any], *, url_name: str = "") -> str | None:
    """The secret a portal URL is about: its ``name``, its change request's (``request_id``,
    or ``pk`` of the URLs in :data:`CHANGE_REQUEST_PK_URLS`) or its audit event's (``seq``;
    ``""`` for an event about no secret that is not ``user``'s own, hidden like an out-of-scope
    one). ``None`` when the URL names none or the object does not exist (the view answers that
    404 itself)."""
    from .models import AuditEvent, ChangeRequest

    if "name" in kwargs:
        return str(kwargs["name"])
    request_id = kwargs.get("request_id")
    if request_id is None and url_name in CHANGE_REQUEST_PK_URLS:
        request_id = kwargs.get("pk")
    if request_id is not None:
        rows = ChangeRequest.objects.filter(pk=request_id)
        return rows.values_list("secret", flat=True).first()
    if "seq" in kwargs:
        event = AuditEvent.objects.filter(seq=kwargs["seq"]).values("secret", "actor").first()
        if event is None or (not event["secret"] and event["actor"] == user.pk):
            return None
        return str(event["secret"])
    return None


def out_of_scope_response(request: HttpRequest, secret: str) -> HttpResponseBase:
    """The answer for a secret outside the person's scope: exactly a missing secret's 404."""
    from . import aws
    from .views.errors import error_response

    error = aws.SecretNotFound(code="ResourceNotFoundException", secret=secret)
    return error_response(request, error, name=secret)
