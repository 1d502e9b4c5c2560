"""django-allauth adapters: local accounts only in demo mode (SSO comes through the social adapter)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Nobody signs up with a local account: demo users are made by ``manage.py demo``,
        everyone else comes through SSO (whose first login the social adapter allows)."""
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        return str(super().get_login_redirect_url(request))


def local_login_enabled() -> bool:
    """Password sign-in exists only in demo mode and tests."""
    return bool(settings.PORTAL_DEMO or settings.TESTING)
