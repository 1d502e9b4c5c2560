"""System checks for the portal's own settings (run by ``manage.py check`` and at start-up)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from .ratelimit import Rate

#: Cache backends that live inside one process: counters there are not shared between workers.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register()
def check_reveal_rate(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``PORTAL_REVEAL_RATE`` must parse, or every reveal would fail."""
    try:
        Rate.parse(settings.PORTAL_REVEAL_RATE)
    except ValueError as exc:
        return [Error(f"PORTAL_REVEAL_RATE: {exc}", id="portal.E001")]
    return []


def _production() -> bool:
    return not (settings.PORTAL_DEMO or settings.TESTING)


@register()
def check_shared_rate_limits(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """In production, more than one worker (``PORTAL_WORKERS`` or ``WEB_CONCURRENCY``) needs a
    shared cache (``CACHE_URL``): with a per-process cache each worker counts reveals and writes
    on its own, so the limits (ASVS 5.0 2.4.1) would silently multiply by the worker count."""
    backend = settings.CACHES["default"]["BACKEND"]
    if _production() and settings.PORTAL_WORKERS > 1 and backend in PER_PROCESS_CACHES:
        return [
            Error(
                f"{settings.PORTAL_WORKERS} workers (PORTAL_WORKERS / WEB_CONCURRENCY) but no "
                "shared cache: each worker would count reveals and writes on its own.",
                hint="Set CACHE_URL to a Redis shared by every worker, or run one worker.",
                id="portal.E002",
            )
        ]
    return []


@register()
def check_trusted_proxies(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``PORTAL_TRUSTED_PROXIES`` must be CIDRs or addresses, ``PORTAL_TRUSTED_PROXY_COUNT`` at
    least 0, and ``PORTAL_WRITE_RATE`` a rate: a typo must not silently trust every sender or
    refuse every write."""
    errors: list[CheckMessage] = []
    for entry in settings.PORTAL_TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            errors.append(
                Error(f"PORTAL_TRUSTED_PROXIES: {entry!r} is not a CIDR", id="portal.E003")
            )
    if settings.PORTAL_TRUSTED_PROXY_COUNT < 0:
        errors.append(Error("PORTAL_TRUSTED_PROXY_COUNT must be 0 or more", id="portal.E003"))
    try:
        Rate.parse(settings.PORTAL_WRITE_RATE)
    except ValueError as exc:
        errors.append(Error(f"PORTAL_WRITE_RATE: {exc}", id="portal.E004"))
    return errors


# --- Audit devices and anchors (README "Audit you can prove")


@register()
def check_audit_devices(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``PORTAL_AUDIT_DEVICES``, ``PORTAL_AUDIT_ANCHORS`` and ``PORTAL_AUDIT_SIGNING_KEY``
    must parse, or no event would reach a device, no anchor be signed."""
    from django.core.exceptions import ImproperlyConfigured

    from . import audit_anchors, audit_devices

    errors: list[CheckMessage] = []
    for spec in audit_devices.device_specs():
        try:
            audit_devices.parse_device(spec)
        except ValueError as exc:
            errors.append(Error(f"PORTAL_AUDIT_DEVICES: {exc}", id="portal.E101"))
    if settings.PORTAL_AUDIT_ANCHORS and settings.PORTAL_AUDIT_ANCHORS != "none":
        try:
            audit_anchors.parse_anchor_sink(settings.PORTAL_AUDIT_ANCHORS)
        except ValueError as exc:
            errors.append(Error(f"PORTAL_AUDIT_ANCHORS: {exc}", id="portal.E102"))
    try:
        audit_anchors.trusted_public_keys()  # the signing key and the previous public keys
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="portal.E103"))
    return errors
