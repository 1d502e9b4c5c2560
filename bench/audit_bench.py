"""Audit log benchmark (a script, not a unit test).

    .venv/bin/python bench/audit_bench.py [--db postgres|sqlite] [--writers 4] [--per-writer 500]
                                          [--events 100000]

Prints:
1. events appended per second by ``--writers`` processes at once, each through
   ``audit.record`` (its own transaction and chain lock per event), on a fresh database;
2. the time ``audit_verify.verify()`` takes over ``--events`` events;
3. the export of ``--events`` events through the real view (CSV and JSON Lines), each in a
   fresh process: time, bytes, and peak memory: the process's maximum resident set
   (``getrusage``) against the same process's before the export, and Python's own peak
   allocations (``tracemalloc``, a second run). The same for a tenth as many events shows
   whether memory stays flat as the log grows.

The database is made and dropped here (PostgreSQL at ``PORTAL_TEST_POSTGRES_URL``, default
127.0.0.1:5432 as ``.ci/run`` starts it). Events past the appended ones are written in bulk
with correct hashes, so the log verifies.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scratch_db import portal_env, run_writers, scratch_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--per-writer", type=int, default=500)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--export-worker", choices=["csv", "jsonl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_worker:  # a child process: DATABASE_URL is set
        import django

        django.setup()
        export(args.export_worker)
        return

    with scratch_database(args.db) as url:
        print(f"database: {args.db} (scratch)  cpus: {os.cpu_count()}")
        appended = args.writers * args.per_writer
        start = time.perf_counter()
        seconds = run_writers(url, writers=args.writers, count=args.per_writer)
        wall = time.perf_counter() - start
        rate = appended / max(seconds)
        print(
            f"append: {args.writers} processes x {args.per_writer} = {appended} events in "
            f"{max(seconds):.2f} s (slowest writer) -> {rate:,.0f} events/s "
            f"(wall with process start-up {wall:.2f} s)"
        )
        os.environ.update(portal_env(url))
        import django

        django.setup()
        from secrets_admin import audit_verify

        for n in (args.events // 10, args.events):
            fill(n)
            start = time.perf_counter()
            result = audit_verify.verify()
            print(
                f"verify: {result.checked:,} events, ok={result.ok}, "
                f"{time.perf_counter() - start:.2f} s"
            )
            for fmt in ("csv", "jsonl"):
                subprocess.run(
                    [sys.executable, __file__, "--export-worker", fmt],
                    env=portal_env(url),
                    check=True,
                )


def fill(total: int) -> None:
    """Append events in bulk (correct hashes, head updated) until the log holds ``total``."""
    from django.db import transaction
    from django.utils import timezone

    from secrets_admin import audit
    from secrets_admin.models import AuditChainHead, AuditEvent

    start = time.perf_counter()
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        seq, prev = head.seq, head.hash or audit.GENESIS
        batch: list[AuditEvent] = []
        while seq < total:
            seq += 1
            event = AuditEvent(
                seq=seq,
                created=timezone.now(),
                action="save" if seq % 3 else "reveal",
                outcome="succeeded",
                actor_username=f"user{seq % 40}",
                actor_provider="oidc",
                actor_email=f"user{seq % 40}@example.com",
                secret=f"repo{seq % 50}-secrets",
                environment=("sandbox", "dev", "main")[seq % 3],
                service="stripe",
                key="secret_key",
                fingerprint_before="a" * 64,
                fingerprint_after="b" * 64,
                base_version=f"{seq - 1:032d}",
                new_version=f"{seq:032d}",
                detail={"cells": 1},
                client_ip="10.0.0.1",
                user_agent="Mozilla/5.0 (bench)",
                request_id=f"{seq:032x}",
                prev_hash=prev,
            )
            event.hash = prev = audit.compute_hash(event)
            batch.append(event)
            if len(batch) == 5000:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=prev)
    print(f"fill: log holds {seq:,} events ({time.perf_counter() - start:.1f} s)")


def export(fmt: str) -> None:
    """Export the whole log through the view (as an auditor would with an empty filter),
    twice: timed, then under tracemalloc. Each export appends its own event."""
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    from secrets_admin.permissions import Role, set_role
    from secrets_admin.views.audit import audit_export

    user, _ = get_user_model().objects.get_or_create(username="bench-auditor")
    set_role(user, [Role.AUDITOR])
    from secrets_admin.models import AuditEvent

    AuditEvent.objects.filter(seq=1).first()  # the baseline has touched the database

    def run() -> tuple[int, int]:
        request = RequestFactory().post("/audit/export/", {"format": fmt})
        request.user = user
        response = audit_export(request)
        size = lines = 0
        for chunk in response.streaming_content:  # type: ignore[attr-defined]
            size += len(chunk)
            lines += 1
        return size, lines

    rss_before = maxrss_mib()
    seconds, (size, lines) = timed(run)
    n = lines - 1 if fmt == "csv" else lines  # the CSV header
    rss_after = maxrss_mib()
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"export {fmt:5}: {n:>7,} events, {size / 2**20:6.1f} MiB in {seconds:5.2f} s "
        f"({n / seconds:,.0f} events/s); peak RSS {rss_after:.1f} MiB "
        f"(+{rss_after - rss_before:.1f} over the process before the export); "
        f"peak Python allocations {peak / 2**20:.2f} MiB"
    )


def timed(fn: Callable[[], tuple[int, int]]) -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    main()
