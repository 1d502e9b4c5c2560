"""Every URL of the project x every persona -> the expected answer (ASVS 5.0 V8, checked on
the server).

THE TABLE is :data:`MATRIX` below, one line per (URL name, arguments, method). Adding a URL to
``secrets_admin/urls.py`` without a line here fails ``test_every_url_name_has_a_row``; so does
any other new URL name in the project (e.g. an allauth upgrade) until it gets a line or a reason
in :data:`NOT_IN_MATRIX`.

How to add a line (see the helpers below)::

    row("secrets_admin:change_request_approve", (CR,), "POST", for_role(Role.APPROVER, ok=FOUND)),

``for_role(minimum, ok=...)`` expands the role ladder: anonymous -> sign-in redirect, outsider
(signed in, no role) -> the no-access page (403), roles below ``minimum`` -> 403, ``minimum``
and above -> ``ok``. ``everyone(status)`` / ``public(anonymous=..., signed_in=...)`` cover pages
that do not depend on the role; ``cells(...)`` spells out all six when nothing else fits.
Arguments and form values may contain ``{placeholders}`` filled from :func:`world` (the secret
and version the table runs against); extend ``world`` when a new URL needs another object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from secrets_admin import audit, aws
from secrets_admin.changes import change_requests, protocol
from secrets_admin.changesets import Edit
from secrets_admin.permissions import Role, set_role

from .conftest import STANDARD_DOC, saml_environ

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "outsider", "auditor", "engineer", "approver", "admin")
ROLE_OF = {
    "outsider": Role.NONE,
    "auditor": Role.AUDITOR,
    "engineer": Role.ENGINEER,
    "approver": Role.APPROVER,
    "admin": Role.ADMIN,
}

#: Expectations besides a plain status.
LOGIN = "302 to sign-in"
NO_ACCESS = "403 no-access page"
Expect = HTTPStatus | str

OK, FOUND, FORBIDDEN, NOT_FOUND = (
    HTTPStatus.OK,
    HTTPStatus.FOUND,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.NOT_FOUND,
)
NOT_ALLOWED, UNAUTHORIZED = HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.UNAUTHORIZED


def for_role(minimum: Role, ok: Expect = OK, *, below: Expect = FORBIDDEN) -> dict[str, Expect]:
    """A page guarded by ``permissions.require``: the role ladder from ``minimum`` up."""
    expect: dict[str, Expect] = {"anonymous": LOGIN, "outsider": NO_ACCESS}
    for persona, role in ROLE_OF.items():
        if role is not Role.NONE:
            expect[persona] = ok if role >= minimum else below
    return expect


def public(*, anonymous: Expect, signed_in: Expect) -> dict[str, Expect]:
    """A page whose answer depends only on being signed in."""
    return {p: anonymous if p == "anonymous" else signed_in for p in PERSONAS}


def everyone(status: Expect) -> dict[str, Expect]:
    return dict.fromkeys(PERSONAS, status)


def cells(anonymous: Expect, outsider: Expect, auditor: Expect, engineer: Expect, approver: Expect, admin: Expect) -> dict[str, Expect]:  # fmt: skip
    return dict(
        zip(PERSONAS, (anonymous, outsider, auditor, engineer, approver, admin), strict=True)
    )


@dataclass(frozen=True)
class Row:
    name: str
    args: tuple[str, ...]
    method: str
    expect: Mapping[str, Expect]
    data: Mapping[str, str] = field(default_factory=dict)
    htmx: bool = False

    @property
    def uses_world(self) -> bool:
        return any("{" in v for v in (*self.args, *self.data.values()))

    @property
    def id(self) -> str:
        return f"{self.method} {self.name}{'(' + ','.join(self.args) + ')' if self.args else ''}{' htmx' if self.htmx else ''}"


def row(
    name: str,
    args: tuple[str, ...] = (),
    method: str = "GET",
    expect: Mapping[str, Expect] | None = None,
    *,
    data: Mapping[str, str] | None = None,
    htmx: bool = False,
) -> Row:
    assert expect is not None and set(expect) == set(PERSONAS), f"{name}: one answer per persona"
    return Row(name, args, method, expect, data or {}, htmx)


HOST = "portal.example.test"
SECRET = "{secret}"
CR = "{change_request}"  # an open change request on {secret}, proposed by someone else
REVEAL = {"version_id": "{version}", "environment": "dev", "service": "stripe", "key": "secret_key"}

# fmt: off
MATRIX: list[Row] = [
    # --- secrets_admin: the portal's own pages, htmx endpoints and actions
    row("secrets_admin:secret_list", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:secret_list", (), "GET", for_role(Role.AUDITOR), htmx=True),
    row("secrets_admin:secret_list", (), "POST", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_list_refresh", (), "POST", for_role(Role.AUDITOR, ok=FOUND)),
    row("secrets_admin:secret_list_refresh", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_list_status", (), "GET", for_role(Role.AUDITOR), htmx=True),
    row("secrets_admin:secret_list_status", (), "POST", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_detail", (SECRET,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:secret_detail", ("legacy-app-dev",), "GET", everyone(NOT_FOUND)),
    row("secrets_admin:secret_detail", ("-secrets",), "GET", everyone(NOT_FOUND)),
    row("secrets_admin:secret_detail", ("absent-secrets",), "GET", for_role(Role.AUDITOR, ok=NOT_FOUND)),
    row("secrets_admin:cell_reveal", (SECRET,), "POST", for_role(Role.ENGINEER), data=REVEAL),
    row("secrets_admin:cell_reveal", (SECRET,), "POST", for_role(Role.ENGINEER), data=REVEAL, htmx=True),
    row("secrets_admin:cell_reveal", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:environment_diff", (SECRET,), "GET", for_role(Role.AUDITOR), data={"a": "dev", "b": "main"}),
    row("secrets_admin:environment_diff", (SECRET,), "GET", for_role(Role.AUDITOR), data={"a": "dev", "b": "main", "show": "differences"}, htmx=True),
    row("secrets_admin:environment_diff", (SECRET,), "GET", for_role(Role.AUDITOR, ok=HTTPStatus.BAD_REQUEST), data={"a": "dev", "b": "nope"}),
    row("secrets_admin:environment_copy_review", (SECRET,), "POST", for_role(Role.ENGINEER), data={"a": "dev", "b": "sandbox", "base_version_id": "{version}", 'copy_service:["databricks"]': "on"}),
    row("secrets_admin:environment_copy_review", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:environment_copy_save", (SECRET,), "POST", for_role(Role.ENGINEER, ok=FOUND), data={"a": "dev", "b": "sandbox", "base_version_id": "{version}"}),
    row("secrets_admin:environment_copy_save", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_integration", (SECRET,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:compliance", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:compliance_refresh", (), "POST", for_role(Role.AUDITOR, ok=FOUND)),
    row("secrets_admin:compliance_refresh", (), "GET", everyone(NOT_ALLOWED)),
    # credential hygiene (the index; names and fingerprints only)
    row("secrets_admin:service_matrix", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:service_matrix", (), "GET", for_role(Role.AUDITOR), data={"environment": "main", "service": "stripe", "presence": "missing"}),
    row("secrets_admin:service_matrix", (), "POST", everyone(NOT_ALLOWED)),
    row("secrets_admin:service_matrix_export", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:credential_reuse", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:credential_reuse", (), "POST", everyone(NOT_ALLOWED)),
    row("secrets_admin:credential_staleness", (), "GET", for_role(Role.AUDITOR), data={"environment": "main"}),
    row("secrets_admin:standard_adoption", (), "GET", for_role(Role.AUDITOR), data={"sort": "-stale"}),
    row("secrets_admin:secret_edit", (SECRET,), "GET", for_role(Role.ENGINEER)),
    row("secrets_admin:secret_edit", (SECRET,), "POST", for_role(Role.ENGINEER)),
    row("secrets_admin:secret_edit", (SECRET,), "PUT", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_edit_review", (SECRET,), "POST", for_role(Role.ENGINEER), data={"base_version_id": "{version}"}),
    row("secrets_admin:secret_edit_review", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_edit_save", (SECRET,), "POST", for_role(Role.ENGINEER), data={"base_version_id": "{version}"}),
    row("secrets_admin:secret_edit_save", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_edit_row", (SECRET,), "GET", for_role(Role.ENGINEER), htmx=True),
    row("secrets_admin:secret_restore_review", (SECRET,), "POST", for_role(Role.ENGINEER, ok=FOUND)),
    row("secrets_admin:secret_restore_review", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_restore_save", (SECRET,), "POST", for_role(Role.ENGINEER, ok=FOUND)),
    row("secrets_admin:secret_restore_save", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_undelete", (SECRET,), "POST", for_role(Role.ADMIN, ok=FOUND)),
    row("secrets_admin:secret_undelete", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_first_version", (SECRET,), "POST", for_role(Role.ENGINEER, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:secret_first_version", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_bulk_paste", (SECRET,), "GET", for_role(Role.ENGINEER)),
    row("secrets_admin:secret_bulk_paste", (SECRET,), "POST", for_role(Role.ENGINEER), data={"environment": "dev", "text": "A_B=c"}),
    row("secrets_admin:secret_bulk_paste_preview", (SECRET,), "POST", for_role(Role.ENGINEER), data={"base_version_id": "{version}", "environment": "dev", "text": "STRIPE_NEW=c"}),
    row("secrets_admin:secret_bulk_paste_preview", (SECRET,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_history", (SECRET,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:secret_version_diff", (SECRET,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:secret_create", (), "GET", for_role(Role.ADMIN)),
    row("secrets_admin:secret_create", (), "POST", for_role(Role.ADMIN, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:secret_migrate", (), "GET", for_role(Role.ADMIN)),
    row("secrets_admin:secret_migrate", (), "POST", for_role(Role.ADMIN), data={"repo": "shop", "legacy": "legacy-app-dev", "source": "legacy-app-dev", "source_environment": "dev", "source_service": "app"}),
    row("secrets_admin:secret_migrate_preview", (), "POST", for_role(Role.ADMIN), data={"repo": "shop", "legacy": "legacy-app-dev", "source": "legacy-app-dev", "source_environment": "dev", "source_service": "app"}),
    row("secrets_admin:secret_migrate_preview", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:secret_migrate_apply", (), "POST", for_role(Role.ADMIN, ok=HTTPStatus.BAD_REQUEST), data={"repo": "shop", "legacy": "legacy-app-dev", "source": "legacy-app-dev", "source_environment": "dev", "source_service": "app", "digest": "stale"}),
    row("secrets_admin:secret_migrate_apply", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:legacy_secret_schedule_deletion", (), "POST", for_role(Role.ADMIN, ok=FOUND), data={"name": "legacy-app-dev", "recovery_days": "7"}),
    row("secrets_admin:legacy_secret_schedule_deletion", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_list", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:change_request_list", (), "GET", for_role(Role.AUDITOR), data={"show": "waiting", "secret": SECRET}),
    row("secrets_admin:change_request_list", (), "POST", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_detail", (CR,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:change_request_detail", ("999999",), "GET", for_role(Role.AUDITOR, ok=NOT_FOUND)),
    row("secrets_admin:change_request_approve", (CR,), "POST", for_role(Role.APPROVER, ok=FOUND), data={"reviewed": "{reviewed}"}),
    row("secrets_admin:change_request_approve", (CR,), "POST", for_role(Role.APPROVER, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:change_request_approve", ("999999",), "POST", for_role(Role.APPROVER, ok=NOT_FOUND)),
    row("secrets_admin:change_request_approve", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_apply", (CR,), "POST", for_role(Role.APPROVER, ok=HTTPStatus.CONFLICT)),
    row("secrets_admin:change_request_apply", ("999999",), "POST", for_role(Role.APPROVER, ok=NOT_FOUND)),
    row("secrets_admin:change_request_apply", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_reject", (CR,), "POST", for_role(Role.APPROVER, ok=FOUND), data={"comment": "not now"}),
    row("secrets_admin:change_request_reject", (CR,), "POST", for_role(Role.APPROVER, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:change_request_reject", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_cancel", (CR,), "POST", for_role(Role.ENGINEER, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:change_request_cancel", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_bypass", (CR,), "POST", for_role(Role.ADMIN, ok=HTTPStatus.BAD_REQUEST), data={"reason": "outage"}),
    row("secrets_admin:change_request_bypass", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:change_request_acknowledge", (CR,), "POST", for_role(Role.APPROVER, ok=HTTPStatus.BAD_REQUEST)),
    row("secrets_admin:change_request_acknowledge", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:audit_log", (), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:audit_log", (), "GET", for_role(Role.AUDITOR), data={"action": "reveal"}, htmx=True),
    row("secrets_admin:audit_event_detail", ("999999",), "GET", for_role(Role.AUDITOR, ok=NOT_FOUND)),
    row("secrets_admin:audit_export", (), "POST", for_role(Role.AUDITOR), data={"format": "csv"}),
    row("secrets_admin:audit_export", (), "POST", for_role(Role.AUDITOR, ok=HTTPStatus.BAD_REQUEST), data={"format": "xml"}),
    row("secrets_admin:audit_export", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:audit_verify", (), "POST", for_role(Role.AUDITOR)),
    row("secrets_admin:audit_verify", (), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:audit_evidence", (CR,), "POST", for_role(Role.AUDITOR)),
    row("secrets_admin:audit_evidence", ("999999",), "POST", for_role(Role.AUDITOR, ok=NOT_FOUND)),
    row("secrets_admin:audit_evidence", (CR,), "GET", everyone(NOT_ALLOWED)),
    row("secrets_admin:audit_secret_timeline", (SECRET,), "GET", for_role(Role.AUDITOR)),
    row("secrets_admin:audit_user_timeline", ("erin-engineer",), "GET", for_role(Role.AUDITOR)),
    # --- load balancer probe (secrets_admin/health.py): no sign-in
    row("healthz", (), "GET", everyone(OK)),
    row("healthz", (), "POST", everyone(NOT_ALLOWED)),
    # --- allauth: sign-in and sign-out
    row("account_login", (), "GET", public(anonymous=OK, signed_in=FOUND)),
    row("account_logout", (), "GET", public(anonymous=FOUND, signed_in=OK)),
    row("account_logout", (), "POST", everyone(FOUND)),
    row("account_inactive", (), "GET", everyone(OK)),
    row("account_signup", (), "GET", public(anonymous=OK, signed_in=FOUND)),
    row("account_signup", (), "POST", public(anonymous=OK, signed_in=FOUND), data={"username": "mallory", "password1": "Pw-12345678!", "password2": "Pw-12345678!"}),
    # --- allauth: single sign-on (OIDC provider "corp", SAML provider "aws")
    row("openid_connect_login", ("corp",), "GET", everyone(OK)),
    row("openid_connect_login", ("nope",), "GET", everyone(NOT_FOUND)),
    row("openid_connect_callback", ("corp",), "GET", everyone(UNAUTHORIZED), data={"code": "stolen", "state": "forged"}),
    row("saml_login", ("aws",), "GET", everyone(OK)),
    row("saml_metadata", ("aws",), "GET", everyone(OK)),
    row("saml_acs", ("aws",), "POST", everyone(FOUND)),
    row("saml_finish_acs", ("aws",), "GET", everyone(UNAUTHORIZED)),
    row("saml_sls", ("aws",), "GET", everyone(HTTPStatus.BAD_REQUEST)),
    row("socialaccount_login_cancelled", (), "GET", everyone(OK)),
    row("socialaccount_login_error", (), "GET", everyone(UNAUTHORIZED)),
    row("socialaccount_signup", (), "GET", everyone(FOUND)),
    row("socialaccount_connections", (), "GET", public(anonymous=LOGIN, signed_in=OK)),
    # --- deploy: Prometheus endpoint, a bearer token only (none configured in the tests: off)
    row("portal_metrics", (), "GET", everyone(NOT_FOUND)),
]
# fmt: on

#: URL names deliberately not in the table, with the reason. Local-account pages exist only in
#: demo mode and tests; production runs with SOCIALACCOUNT_ONLY, where they are not routed at
#: all (``test_sso_config.test_production_is_sso_only`` proves it).
_LOCAL_ACCOUNTS_ONLY = "local accounts: demo mode and tests only; not routed in production"
NOT_IN_MATRIX: dict[str, str] = {
    name: _LOCAL_ACCOUNTS_ONLY
    for name in (
        "account_reauthenticate",
        "account_request_reauthentication_code",
        "account_confirm_reauthentication_code",
        "account_email",
        "account_email_verification_sent",
        "account_confirm_email",
        "account_change_password",
        "account_set_password",
        "account_reset_password",
        "account_reset_password_done",
        "account_reset_password_from_key",
        "account_reset_password_from_key_done",
        "account_confirm_login_code",
    )
}


def url_names(patterns: list[Any] | None = None, namespace: str = "") -> Iterator[str]:
    """Every named URL of the project, namespaced (``secrets_admin:secret_list``)."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name


def test_every_url_name_has_a_row() -> None:
    names = set(url_names())
    in_table = {r.name for r in MATRIX}
    missing_portal = sorted(
        n for n in names if n.startswith("secrets_admin:") and n not in in_table
    )
    assert not missing_portal, f"add a row to MATRIX in {__file__} for: {missing_portal}"
    unaccounted = sorted(names - in_table - set(NOT_IN_MATRIX))
    assert not unaccounted, f"add a row (or a reason in NOT_IN_MATRIX) for: {unaccounted}"
    stale = sorted((in_table | set(NOT_IN_MATRIX)) - names)
    assert not stale, f"rows for URL names that no longer exist: {stale}"


#: URL x persona cells checked by test_access.
MATRIX_CELLS = len(MATRIX) * len(PERSONAS)


# --------------------------------------------------------------------------------------------
# Running one cell


@pytest.fixture
def providers(settings: Any) -> None:
    """The OIDC provider ``corp`` (never contacted: its issuer is a closed port) and the SAML
    provider ``aws``; a dotted host name, since python3-saml refuses single-label hosts."""
    from portal import sso

    environ = {
        "PORTAL_SSO_PROVIDERS": "corp,aws",
        "PORTAL_SSO_CORP_ISSUER": "http://127.0.0.1:9/",
        "PORTAL_SSO_CORP_CLIENT_ID": "portal",
        "PORTAL_SSO_CORP_CLIENT_SECRET": "portal-secret",
        **saml_environ("aws"),
    }
    settings.SOCIALACCOUNT_PROVIDERS = sso.providers_from_env(environ)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


@pytest.fixture
def world(make_secret: Any, django_user_model: Any) -> dict[str, str]:
    """What ``{placeholders}`` in the table stand for: a conforming secret and its current
    version (and a legacy secret beside it). Made only for rows that use them."""
    make_secret("shop-secrets", STANDARD_DOC)
    make_secret("legacy-app-dev", "{}")
    version = aws.read_current("shop-secrets").version_id
    proposer = django_user_model.objects.create_user(username="pat-proposer")
    set_role(proposer, [Role.ENGINEER])
    cr = change_requests.change_request_propose(
        name="shop-secrets",
        base_version_id=version,
        changeset=[Edit("set", "main", "stripe", "secret_key", "sk_live_2")],
        context=audit.Context(user=proposer),
        change_id=protocol.new_change_id(
            user=proposer, name="shop-secrets", base_version_id=version
        ),
    )
    return {
        "secret": "shop-secrets",
        "version": version,
        "change_request": str(cr.pk),
        "reviewed": change_requests.change_request_reviewed_token(cr, version),
    }


@pytest.mark.parametrize(
    ("entry", "persona"),
    [(r, p) for r in MATRIX for p in PERSONAS],
    ids=[f"{r.id} as {p}" for r in MATRIX for p in PERSONAS],
)
def test_access(entry: Row, persona: str, providers: None, client: Any, request: Any) -> None:
    client.defaults["HTTP_HOST"] = HOST
    world = request.getfixturevalue("world") if entry.uses_world else {}
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    url = reverse(entry.name, args=[a.format(**world) for a in entry.args])
    data = {k: v.format(**world) for k, v in entry.data.items()}
    headers = {"HX-Request": "true"} if entry.htmx else {}
    if entry.method == "GET":
        response = client.get(url, data, headers=headers)
    else:
        response = client.generic(
            entry.method, url, _form(data), "application/x-www-form-urlencoded", headers=headers
        )

    expected = entry.expect[persona]
    where = f"{entry.id} as {persona}"
    if expected == LOGIN:
        assert response.status_code == FOUND, where
        assert response["Location"].startswith(reverse("account_login") + "?next="), where
    elif expected == NO_ACCESS:
        assert response.status_code == FORBIDDEN, where
        assert b"no access yet" in response.content, where
    else:
        assert response.status_code == expected, where
    if response.status_code == OK and entry.htmx:
        assert b"<html" not in response.content, f"{where}: htmx gets a fragment"


def _form(data: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(data)
