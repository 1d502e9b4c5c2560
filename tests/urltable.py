"""Every URL the portal serves, found by walking the URL resolver, for the tests that must cover
all of them: CSRF on every POST, ``Cache-Control: no-store`` and the security headers on every page.

A new view is covered automatically. When it accepts POST, add its name to :data:`POST_VIEWS`
(``tests/test_csrf.py`` fails naming it until then); when its URL has a new kind of parameter,
add a sample to :data:`SAMPLE_BY_CONVERTER` or :data:`SAMPLE_BY_KWARG`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

#: The secret every sample URL names; tests that fetch pages create it first.
SAMPLE_SECRET = "a-secrets"

#: The portal's own views (by URL name) that accept POST -> whether GET is also answered there
#: (a form page) rather than refused with 405. Every other view of ours must refuse POST.
POST_VIEWS: dict[str, bool] = {
    "secrets_admin:secret_list_refresh": False,
    "secrets_admin:cell_reveal": False,
    "secrets_admin:compliance_refresh": False,
    "secrets_admin:audit_export": False,
    "secrets_admin:audit_verify": False,
    "secrets_admin:audit_evidence": False,
    "secrets_admin:secret_edit": True,
    "secrets_admin:secret_edit_review": False,
    "secrets_admin:secret_edit_save": False,
    "secrets_admin:secret_create": True,
    "secrets_admin:secret_restore_review": False,
    "secrets_admin:secret_restore_save": False,
    "secrets_admin:secret_undelete": False,
    "secrets_admin:environment_copy_review": False,
    "secrets_admin:environment_copy_save": False,
    "secrets_admin:secret_migrate": True,
    "secrets_admin:secret_migrate_preview": False,
    "secrets_admin:secret_migrate_apply": False,
    "secrets_admin:legacy_secret_schedule_deletion": False,
    "secrets_admin:change_request_approve": False,
    "secrets_admin:change_request_apply": False,
    "secrets_admin:change_request_reject": False,
    "secrets_admin:change_request_cancel": False,
    "secrets_admin:change_request_bypass": False,
    "secrets_admin:change_request_acknowledge": False,
    # editing
    "secrets_admin:secret_first_version": False,
    "secrets_admin:secret_bulk_paste": True,
    "secrets_admin:secret_bulk_paste_preview": False,
}

#: Views that may take a POST without a CSRF token, each with the reason. Keep it empty unless a
#: protocol forbids the token (e.g. a SAML assertion consumer service, which the IdP posts to).
CSRF_EXEMPT: dict[str, str] = {
    "saml_acs": (
        "SAML 2.0 HTTP-POST binding: the identity provider posts the response cross-site; "
        "allauth verifies the signed assertion, its audience and the RelayState instead"
    ),
    "saml_sls": "SAML single logout: the identity provider posts the signed logout request cross-site",
}

#: A sample value per path converter class name, and per keyword (which wins).
SAMPLE_BY_CONVERTER = {
    "SecretNameConverter": SAMPLE_SECRET,
    "AwsSecretNameConverter": SAMPLE_SECRET,
    "IntConverter": "1",
    "StringConverter": "x",
    "SlugConverter": "x",
    "PathConverter": "x",
    "UUIDConverter": "00000000-0000-0000-0000-000000000001",
}
SAMPLE_BY_KWARG: dict[str, str] = {}
_REGEX_SAMPLE = "x1"


@dataclass(frozen=True)
class Url:
    """One URL pattern: its full route, name (``namespace:name``, ``None`` when unnamed), a
    sample path that resolves to it, and whether the view is the portal's own."""

    route: str
    name: str | None
    path: str
    ours: bool

    def __str__(self) -> str:
        return self.name or self.route


def all_urls() -> list[Url]:
    """Every URL pattern of the project, each with a sample path (checked to resolve back)."""
    urls = []
    for route, name, pattern, callback in _walk(get_resolver().url_patterns, "", None):
        path = "/" + _sample_path(route, pattern)
        assert resolve(path).func == callback, (
            f"sample path {path} for {route} resolves elsewhere; add a sample in tests/urltable.py"
        )
        module = getattr(callback, "__module__", "") or ""
        urls.append(Url(route=route, name=name, path=path, ours=module.startswith("secrets_admin")))
    return urls


def _walk(patterns: list[Any], prefix: str, namespace: str | None) -> Iterator[tuple[Any, ...]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = namespace
            if p.namespace:
                ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace and p.name else p.name
            yield prefix + str(p.pattern), name, p, p.callback


def _sample_path(route: str, pattern: URLPattern) -> str:
    converters = {}
    if isinstance(pattern.pattern, RoutePattern):
        converters = pattern.pattern.converters

    def route_sample(m: re.Match[str]) -> str:
        kwarg = m.group(2)
        if kwarg in SAMPLE_BY_KWARG:
            return SAMPLE_BY_KWARG[kwarg]
        converter = type(converters.get(kwarg)).__name__
        assert converter in SAMPLE_BY_CONVERTER, (
            f"no sample for <{m.group(0)}> in {route}: add one in tests/urltable.py"
        )
        return SAMPLE_BY_CONVERTER[converter]

    path = re.sub(
        r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE_BY_KWARG.get(m.group(1), _REGEX_SAMPLE), route
    )
    path = re.sub(r"<(?:(\w+):)?(\w+)>", route_sample, path)
    return path.replace("^", "").replace("$", "")
