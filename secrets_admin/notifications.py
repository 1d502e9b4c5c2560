"""Emails about change requests, through Django's email framework.

Who gets what: the approvers whose scope covers the request's secret in every environment it
touches (``permissions.approvers_for``; the author excluded) when a request opens;
the author when it is approved, rejected, applied, conflicted or expired. An email names the
secret, the environments, the cells (by name) and the people, never a value or a fingerprint.
Sending never blocks the workflow: a failure is logged and the request goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from . import permissions
from .models import ChangeRequest

log = logging.getLogger(__name__)

#: What the author is told, by the request's status (or "approved": a vote that did not finish).
AUTHOR_EVENTS = ("approved", "rejected", "applied", "conflicted", "expired")


def request_url(request: ChangeRequest) -> str:
    """The request's page, absolute when ``PORTAL_BASE_URL`` is set."""
    path = reverse("secrets_admin:change_request_detail", args=[request.pk])
    return f"{settings.PORTAL_BASE_URL}{path}"


def approver_emails(request: ChangeRequest) -> list[str]:
    """Emails of the active users who may approve ``request`` (approver or admin role on its
    secret in every environment it touches), its author excluded. Nobody outside the scope is
    told a request exists: the email names the secret."""
    users = permissions.approvers_for(request.secret, list(request.environments))
    return sorted({u.email for u in users if u.email and u.pk != request.author_id})


def _send(
    subject: str, template: str, request: ChangeRequest, to: Iterable[str], **extra: object
) -> int:
    recipients = sorted(set(to))
    if not recipients:
        return 0
    body = render_to_string(template, {"cr": request, "url": request_url(request), **extra})
    try:
        return send_mail(subject, body, None, recipients)
    except Exception:  # SMTP down, bad address: the workflow must not fail on a notification
        log.exception("could not send %r for change request #%s", subject, request.pk)
        return 0


def request_opened(request: ChangeRequest) -> int:
    """Tell the approvers a request waits for them; return how many emails were sent."""
    return _send(
        f"[Secrets Portal] Change request #{request.pk} on {request.secret} needs approval",
        "secrets_admin/email/change_request_opened.txt",
        request,
        approver_emails(request),
    )


def author_told(request: ChangeRequest, event: str, *, by: str = "", comment: str = "") -> int:
    """Tell the author that ``event`` (one of :data:`AUTHOR_EVENTS`) happened to their request."""
    if event not in AUTHOR_EVENTS:
        raise ValueError(event)
    return _send(
        f"[Secrets Portal] Change request #{request.pk} on {request.secret} {event}",
        "secrets_admin/email/change_request_event.txt",
        request,
        [request.author_email] if request.author_email else [],
        event=event,
        by=by,
        comment=comment,
    )
