"""Receivers connected in ``SecretsAdminConfig.ready``: an audit event, once committed, is logged
(:func:`.logs.log_audit_event`) and counted (:mod:`.metrics`)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from ..models import AuditEvent
from . import logs


@receiver(post_save, sender=AuditEvent, dispatch_uid="observability_audit_event")
def audit_event_saved(
    sender: type[AuditEvent], instance: AuditEvent, created: bool, **_: Any
) -> None:
    if created:
        record = logs.current()
        request_id = record.request_id if record else ""
        # A rolled-back append never happened: log it only once it is committed.
        transaction.on_commit(lambda: logs.log_audit_event(instance, request_id=request_id))
