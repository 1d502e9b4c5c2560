"""Single sign-on settings from environment variables (read by ``settings.py``; README "Single sign-on").

Pure functions over a mapping of environment variables, so they are tested without Django.

* :func:`providers_from_env` -> ``SOCIALACCOUNT_PROVIDERS`` for django-allauth: one app per id in
  ``PORTAL_SSO_PROVIDERS``, each configured by ``PORTAL_SSO_<ID>_*`` variables. Type ``oidc``
  is allauth's generic OpenID Connect provider (PKCE on, ``groups`` scope requested); type
  ``saml`` is its SAML provider (``django-allauth[saml]``).
* :func:`role_groups_from_env` -> ``PORTAL_ROLE_GROUPS``: identity-provider group -> role label.

Both raise :class:`django.core.exceptions.ImproperlyConfigured` with the variable to fix, so a
misconfigured deployment refuses to start instead of failing at someone's first sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

#: Role labels a group may map to (``permissions.Role`` labels; kept here so settings do not
#: import the app).
ROLE_LABELS = ("auditor", "engineer", "approver", "admin")

#: Provider ids appear in URLs (``/accounts/oidc/<id>/login/``, ``/accounts/saml/<id>/login/``).
PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

DEFAULT_OIDC_SCOPES = "openid email profile groups"
DEFAULT_GROUPS_CLAIM = "groups"

#: Where a SAML IdP usually puts the subject, email and names; overridable per provider.
SAML_ATTRIBUTE_DEFAULTS = {
    "uid": "urn:oasis:names:tc:SAML:attribute:subject-id",
    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "first_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "last_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
}


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class _Env:
    """Reads ``PORTAL_SSO_<ID>_<NAME>`` for one provider and names the variable in errors."""

    def __init__(self, environ: Mapping[str, str], provider_id: str) -> None:
        self.environ = environ
        self.prefix = "PORTAL_SSO_" + provider_id.upper().replace("-", "_") + "_"

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(self.prefix + name, "").strip() or default

    def required(self, name: str, why: str) -> str:
        value = self.get(name)
        if not value:
            raise ImproperlyConfigured(f"Set {self.prefix}{name}: {why}.")
        return value


def _oidc_app(provider_id: str, env: _Env, groups_claim: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "server_url": env.required("ISSUER", "the issuer URL of the OpenID Connect provider"),
        "scope": env.get("SCOPES", DEFAULT_OIDC_SCOPES).replace(",", " ").split(),
        "oauth_pkce_enabled": True,
        "groups_claim": env.get("GROUPS_CLAIM", groups_claim),
        "fetch_userinfo": True,
    }
    if method := env.get("TOKEN_AUTH_METHOD"):
        if method not in ("client_secret_basic", "client_secret_post"):
            raise ImproperlyConfigured(
                f"{env.prefix}TOKEN_AUTH_METHOD must be client_secret_basic or "
                f"client_secret_post, not {method!r}."
            )
        settings["token_auth_method"] = method
    return {
        "provider_id": provider_id,
        "name": env.get("NAME", provider_id),
        "client_id": env.required("CLIENT_ID", "the client id registered at the provider"),
        "secret": env.required("CLIENT_SECRET", "the client secret registered at the provider"),
        "settings": settings,
    }


def _saml_app(provider_id: str, env: _Env, groups_claim: str) -> dict[str, Any]:
    entity_id = env.required("IDP_ENTITY_ID", "the identity provider's SAML entity id (issuer)")
    idp: dict[str, Any] = {"entity_id": entity_id}
    if metadata_url := env.get("IDP_METADATA_URL"):
        idp["metadata_url"] = metadata_url
    else:
        idp["sso_url"] = env.required(
            "IDP_SSO_URL", "the IdP's sign-in URL (or set IDP_METADATA_URL instead)"
        )
        idp["x509cert"] = env.required(
            "IDP_X509CERT", "the IdP's signing certificate, PEM body (or set IDP_METADATA_URL)"
        )
        if slo_url := env.get("IDP_SLO_URL"):
            idp["slo_url"] = slo_url
    mapping = {
        key: env.get("ATTR_" + key.upper(), default)
        for key, default in SAML_ATTRIBUTE_DEFAULTS.items()
    }
    settings: dict[str, Any] = {
        "idp": idp,
        "attribute_mapping": mapping,
        "groups_claim": env.get("GROUPS_CLAIM", groups_claim),
        # ASVS 5.0 6.8.2: the assertion must be signed; IdP-initiated logins are refused.
        "advanced": {
            "want_assertion_signed": True,
            "reject_idp_initiated_sso": True,
            "strict": True,
        },
    }
    if sp_entity_id := env.get("SP_ENTITY_ID"):
        settings["sp"] = {"entity_id": sp_entity_id}
    return {
        "provider_id": provider_id,
        "name": env.get("NAME", provider_id),
        # allauth's SAML URLs use the app's client_id as the organisation slug.
        "client_id": provider_id,
        "settings": settings,
    }


def providers_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SOCIALACCOUNT_PROVIDERS`` for every id in ``PORTAL_SSO_PROVIDERS`` (comma-separated).

    Per id: ``PORTAL_SSO_<ID>_TYPE`` is ``oidc`` or ``saml``; the other variables are listed in
    the README. Returns ``{"openid_connect": {"APPS": [...]}, "saml": {"APPS": [...]}}`` with
    only the types in use. Raises ``ImproperlyConfigured`` on an unknown type, a bad id or a
    missing variable.
    """
    groups_claim = environ.get("PORTAL_GROUPS_CLAIM", "").strip() or DEFAULT_GROUPS_CLAIM
    oidc: list[dict[str, Any]] = []
    saml: list[dict[str, Any]] = []
    ids = _list(environ.get("PORTAL_SSO_PROVIDERS", ""))
    if len(set(ids)) != len(ids):
        raise ImproperlyConfigured("PORTAL_SSO_PROVIDERS names a provider twice.")
    for provider_id in ids:
        if not PROVIDER_ID.match(provider_id):
            raise ImproperlyConfigured(
                f"PORTAL_SSO_PROVIDERS: {provider_id!r} is not a valid id (lower-case letters, "
                "digits and '-', at most 40 characters; it appears in the sign-in URL)."
            )
        env = _Env(environ, provider_id)
        kind = env.get("TYPE", "oidc").lower()
        if kind == "oidc":
            oidc.append(_oidc_app(provider_id, env, groups_claim))
        elif kind == "saml":
            saml.append(_saml_app(provider_id, env, groups_claim))
        else:
            raise ImproperlyConfigured(f"{env.prefix}TYPE must be oidc or saml, not {kind!r}.")
    providers: dict[str, Any] = {}
    if oidc:
        providers["openid_connect"] = {"OAUTH_PKCE_ENABLED": True, "APPS": oidc}
    if saml:
        providers["saml"] = {"APPS": saml}
    return providers


def role_groups_from_env(value: str) -> dict[str, str]:
    """Parse ``PORTAL_ROLE_GROUPS``: ``"idp-group=role,other-group=role"`` -> ``{group: role}``.

    A group name may contain ``=`` (the last one separates the role) but not ``,``. Roles are
    ``auditor``, ``engineer``, ``approver``, ``admin``. Raises ``ImproperlyConfigured`` on an
    entry without ``=``, an unknown role, or a group mapped twice.
    """
    mapping: dict[str, str] = {}
    for entry in _list(value):
        group, sep, role = entry.rpartition("=")
        group, role = group.strip(), role.strip().lower()
        if not sep or not group:
            raise ImproperlyConfigured(
                f"PORTAL_ROLE_GROUPS: {entry!r} should look like 'idp-group=role'."
            )
        if role not in ROLE_LABELS:
            raise ImproperlyConfigured(
                f"PORTAL_ROLE_GROUPS: {entry!r} names role {role!r}; "
                f"use one of {', '.join(ROLE_LABELS)}."
            )
        if group in mapping:
            raise ImproperlyConfigured(f"PORTAL_ROLE_GROUPS maps group {group!r} twice.")
        mapping[group] = role
    return mapping


def form_action_origins(providers: Mapping[str, Any]) -> list[str]:
    """Origins the sign-in forms may lead to (CSP ``form-action``), one per configured IdP.

    Browsers apply ``form-action`` to the redirects after a form is submitted, so the POST to
    ``/accounts/oidc/<id>/login/`` that answers with a redirect to the IdP is blocked unless the
    IdP's origin is listed. Taken from the OIDC issuer and the SAML sign-in or metadata URL; an
    IdP whose authorization endpoint is on another host needs ``PORTAL_CSP_FORM_ACTION``.
    """
    origins: list[str] = []
    for config in providers.values():
        for app in config.get("APPS", []):
            app_settings = app.get("settings", {})
            idp = app_settings.get("idp", {})
            for url in (
                app_settings.get("server_url"),
                idp.get("sso_url"),
                idp.get("metadata_url"),
            ):
                parts = urlsplit(url or "")
                origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
                if origin and origin not in origins:
                    origins.append(origin)
    return origins
