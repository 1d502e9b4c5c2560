"""Template filters for access scopes (display only: the views check access themselves)."""

from __future__ import annotations

from django import template

from .. import permissions

register = template.Library()


@register.filter
def reveal_needs_reason(environment: str) -> bool:
    """Whether revealing a value of ``environment`` asks for a reason (a protected environment
    whose reveal policy is ``reason`` or ``approver``)."""
    return permissions.reveal_needs_reason(str(environment))
