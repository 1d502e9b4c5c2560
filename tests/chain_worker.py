"""Append audit events from a process of its own: ``python -m tests.chain_worker COUNT GO_FILE TAG``.

Used by the chain's concurrency test and by ``bench/audit_bench.py``. The database comes from
``DATABASE_URL``. Each worker connects, waits until ``GO_FILE`` exists (so that all start
together), appends ``COUNT`` events through ``audit.record`` and prints how long that took.
"""

from __future__ import annotations

import os
import sys
import time


def main(count: int, go_file: str, tag: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("PORTAL_TESTING", "1")
    import django

    django.setup()
    from django.db import connection

    from secrets_admin import audit

    connection.ensure_connection()
    while not os.path.exists(go_file):
        time.sleep(0.002)
    started = time.perf_counter()
    for i in range(count):
        audit.record(
            audit.AuditAction.REVEAL,
            secret="bench-secrets",
            environment="dev",
            service="stripe",
            key="secret_key",
            detail={"writer": tag, "i": i},
        )
    print(f"{tag} {count} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
