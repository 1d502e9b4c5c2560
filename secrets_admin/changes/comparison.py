"""Comparisons of typed values with stored ones: a response that tells whether what a person
typed equals what Secrets Manager holds (the review's "changed" or "no changes", a save's
"nothing to save", a conflict page) is an oracle for guessing a value. Each such response is
recorded in the audit log, naming the cells (never a value), and counts against the person's
reveal budget (``PORTAL_REVEAL_RATE``), like a reveal (invariant 1; ASVS 5.0 2.4.1).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import audit, documents, ratelimit
from .protocol import CellRef, Version


def typed_values_compare(
    *, name: str, base: Version, cells: Iterable[CellRef], context: audit.Context
) -> int:
    """Charge and record one comparison of the typed values of ``cells`` with version ``base``
    before the response that tells the outcome is computed. Only cells that hold a stored value
    in ``base`` are compared (a new cell tells nothing). Returns how many cells were compared
    (0: nothing recorded, nothing charged).

    One response counts once whatever its number of cells: a response answers at most one guess
    per cell. Raises :class:`~secrets_admin.ratelimit.ComparisonsLimited` (429) when the budget
    is used up, and :class:`~secrets_admin.audit.AuditUnavailable` (fail closed).
    """
    compared = [c for c in dict.fromkeys(cells) if documents.lookup(base.document, c)[0]]
    return stored_values_compare(
        name=name, base_version_id=base.version_id, cells=compared, context=context
    )


def stored_values_compare(
    *, name: str, base_version_id: str, cells: Iterable[CellRef], context: audit.Context
) -> int:
    """:func:`typed_values_compare` for ``cells`` already known to hold a stored value in
    version ``base_version_id`` (e.g. a migration plan's ``.env`` cells that exist already).
    Same budget, audit event and errors."""
    compared = list(dict.fromkeys(cells))
    if not compared:
        return 0
    user = context.user
    who = str(user.pk) if user is not None else context.extra_actor.get("actor_username", "")
    limited = ratelimit.consume(ratelimit.REVEAL_SCOPE, who, ratelimit.reveal_rate())
    if limited:
        raise ratelimit.ComparisonsLimited(limited)
    environments = {env for env, _, _ in compared}
    audit.record(
        audit.AuditAction.VALUE_COMPARE,
        context=context,
        secret=name,
        environment=environments.pop() if len(environments) == 1 else "",
        base_version=base_version_id,
        detail={
            "cells": [{"environment": e, "service": s, "key": k} for e, s, k in compared],
            "count": len(compared),
        },
    )
    return len(compared)
