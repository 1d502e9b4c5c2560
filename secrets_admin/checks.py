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
