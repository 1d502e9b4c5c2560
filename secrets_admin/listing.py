"""The list of unified secrets: cached metadata, search, paging, and per-secret summaries.

Listing costs ceil(N/100) ``ListSecrets`` calls cold and none warm: the metadata (never values) is
kept in Django's cache for ``PORTAL_LIST_CACHE_SECONDS`` and dropped by the portal's own writes
(:func:`invalidate`). Structure shown on the list (environments, services, conformity) comes
from :class:`~secrets_admin.models.SecretSummary`, recorded whenever the portal reads a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from . import aws, documents
from .models import SecretSummary

CACHE_KEY = "portal:listing:v1"


@dataclass(frozen=True)
class Listing:
    """Every unified secret's metadata, and when it was fetched (epoch seconds)."""

    secrets: list[aws.SecretMeta]
    fetched_at: float


def get_listing(*, refresh: bool = False) -> Listing:
    """The cached listing, fetched from AWS when absent, expired or ``refresh`` is asked.

    Raises :class:`~secrets_admin.aws.AwsError` when AWS must be asked and fails.
    """
    if not refresh:
        cached = cache.get(CACHE_KEY)
        if isinstance(cached, Listing):
            return cached
    listing = Listing(
        secrets=aws.list_unified_secrets(settings.PORTAL_SECRET_SUFFIX), fetched_at=time.time()
    )
    cache.set(CACHE_KEY, listing, settings.PORTAL_LIST_CACHE_SECONDS)
    return listing


def invalidate() -> None:
    """Forget the cached listing (after the portal itself creates or changes a secret)."""
    cache.delete(CACHE_KEY)


def search(secrets: list[aws.SecretMeta], query: str) -> list[aws.SecretMeta]:
    """Secrets whose name or description contains ``query`` (case-insensitive)."""
    q = query.strip().lower()
    if not q:
        return secrets
    return [m for m in secrets if q in m.name.lower() or q in m.description.lower()]


@dataclass(frozen=True)
class Status:
    """A badge on the list or grid: a short ``label``, a ``tone`` for styling, and ``detail``."""

    label: str
    tone: str
    detail: str = ""


def statuses(meta: aws.SecretMeta, summary: SecretSummary | None) -> list[Status]:
    """The badges of one secret, from listing metadata and (when current) its summary."""
    out: list[Status] = []
    if meta.scheduled_for_deletion:
        when = meta.deleted_date.date().isoformat() if meta.deleted_date else ""
        out.append(Status("scheduled for deletion", "danger", f"deletion date {when}"))
    if meta.is_replica(aws.region() if meta.primary_region else ""):
        out.append(Status("replica", "muted", f"read-only; primary region {meta.primary_region}"))
    if meta.rotation_enabled:
        out.append(Status("rotation enabled", "warn", "a rotation function also writes it"))
    if not meta.current_version and not meta.scheduled_for_deletion:
        out.append(Status("no value yet", "muted", "created without a value"))
    elif summary is not None and summary.version_id == meta.current_version:
        out.append(_kind_status(summary.kind, summary.reasons, summary.size_bytes))
    elif meta.current_version:
        out.append(Status("not read yet", "muted", "open it to check its structure"))
    return out


def _kind_status(kind: str, reasons: list[str], size: int) -> Status:
    if kind == "conforming":
        return Status("conforming", "ok")
    if kind == "binary":
        return Status("binary", "danger", f"{size} bytes of binary data")
    label = {"not_json": "not JSON", "empty": "empty"}.get(kind, "non-standard")
    return Status(label, "danger", "; ".join(reasons[:3]))


def remember(name: str, version_id: str, classified: documents.Classified) -> SecretSummary:
    """Record what a read of ``version_id`` showed of the secret's structure (names only)."""
    fields: dict[str, Any] = {
        "version_id": version_id,
        "kind": classified.kind,
        "reasons": list(classified.reasons),
        "size_bytes": classified.size_bytes,
        "environments": [],
        "service_count": 0,
        "missing_cells": {},
    }
    if classified.conforming:
        doc = classified.document
        grid = documents.grid(doc)
        fields["environments"] = grid.environments
        fields["service_count"] = len(documents.services(doc))
        fields["missing_cells"] = grid.missing_counts()
    summary, _ = SecretSummary.objects.update_or_create(name=name, defaults=fields)
    return summary


def summaries_for(names: list[str]) -> dict[str, SecretSummary]:
    """Summaries of the given secrets, by name (one query)."""
    return {s.name: s for s in SecretSummary.objects.filter(name__in=names)}


def scan(names: list[str]) -> int:
    """Read each named secret once and remember its structure; return how many were read.

    Used by ``manage.py secrets_scan`` and the demo seed. Secrets that cannot be read are skipped.
    """
    read = 0
    for name in names:
        try:
            value = aws.read_current(name)
        except aws.AwsError:
            continue
        remember(name, value.version_id, classify_value(value))
        read += 1
    return read


def classify_value(value: aws.SecretValue) -> documents.Classified:
    """Classify a read version: binary values are sized, never decoded."""
    if value.binary is not None:
        return documents.classify_binary(len(value.binary))
    return documents.classify(value.text or "")
