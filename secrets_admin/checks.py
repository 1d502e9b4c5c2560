"""System checks for the portal's own settings (run by ``manage.py check`` and at start-up)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from .ratelimit import Rate


@register()
def check_reveal_rate(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``PORTAL_REVEAL_RATE`` must parse, or every reveal would fail."""
    try:
        Rate.parse(settings.PORTAL_REVEAL_RATE)
    except ValueError as exc:
        return [Error(f"PORTAL_REVEAL_RATE: {exc}", id="portal.E001")]
    return []


# --- Audit devices and anchors (README "Audit you can prove")


@register()
def check_audit_devices(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``PORTAL_AUDIT_DEVICES``, ``PORTAL_AUDIT_ANCHORS`` and ``PORTAL_AUDIT_SIGNING_KEY``
    must parse, or no event would reach a device, no anchor be signed."""
    from django.core.exceptions import ImproperlyConfigured

    from . import audit_devices

    errors: list[CheckMessage] = []
    for spec in audit_devices.device_specs():
        try:
            audit_devices.parse_device(spec)
        except ValueError as exc:
            errors.append(Error(f"PORTAL_AUDIT_DEVICES: {exc}", id="portal.E101"))
    if settings.PORTAL_AUDIT_ANCHORS and settings.PORTAL_AUDIT_ANCHORS != "none":
        try:
            audit_devices.parse_anchor_sink(settings.PORTAL_AUDIT_ANCHORS)
        except ValueError as exc:
            errors.append(Error(f"PORTAL_AUDIT_ANCHORS: {exc}", id="portal.E102"))
    try:
        audit_devices.trusted_public_keys()  # the signing key and the previous public keys
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), id="portal.E103"))
    return errors
