"""Audit outbox throughput (README "Audit you can prove"; a script, not a unit test).

    .venv/bin/python bench/audit_ship_bench.py [--db sqlite|postgres] [--events 2000]
                                               [--batch 500]

Appends ``--events`` events through ``audit.record`` (each with its outbox row), then ships
the outbox to each audit device alone and to all of them at once, from a fresh cursor each
time, and prints events shipped per second: the append-only file, S3 (one object per event,
Object Lock bucket) and CloudWatch Logs (batched ``PutLogEvents``), the last two on an
in-process moto server over HTTP (a real AWS endpoint adds network latency per call; S3
ships ``_S3_THREADS`` objects at once to hide it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scratch_db import portal_env, scratch_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with scratch_database(args.db) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(portal_env(url))
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        try:
            run(args.events, args.batch, Path(tmp), args.db)
        finally:
            server.stop()


def run(count: int, batch: int, tmp: Path, db: str) -> None:
    import boto3
    import django

    django.setup()
    from django.conf import settings

    from secrets_admin import audit, audit_devices
    from secrets_admin.models import AuditDeviceCursor, AuditOutbox

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench-audit-events", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="bench-audit-events",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    boto3.client("logs").create_log_group(logGroupName="/bench/audit")
    devices = {
        "file": f"file:{tmp / 'audit.jsonl'}",
        "s3": "s3:bench-audit-events/portal",
        "cloudwatch": "cloudwatch:/bench/audit:events",
    }

    def append(n: int) -> float:
        start = time.perf_counter()
        for i in range(n):
            audit.record(
                audit.AuditAction.REVEAL,
                secret="bench-secrets",  # noqa: S106 # nosec B106 - a secret name
                environment="dev",
                service="stripe",
                key=f"key{i}",
                detail={"i": i},
            )
        return n / (time.perf_counter() - start)

    print(f"database: {db}  events: {count}  batch: {batch}  cpus: {os.cpu_count()}")
    settings.PORTAL_AUDIT_DEVICES = []
    print(f"appended without devices : {append(count // 4):8.0f} events/s (no outbox row)")
    settings.PORTAL_AUDIT_DEVICES = list(devices.values())
    rate = append(count)
    print(f"appended with outbox rows: {rate:8.0f} events/s")
    events = list(AuditOutbox.objects.values_list("seq", "created"))
    runs = [*((name, [spec]) for name, spec in devices.items()), ("all three", [*devices.values()])]
    for n, (name, specs) in enumerate(runs):
        settings.PORTAL_AUDIT_DEVICES = specs
        if n:  # a fresh outbox and fresh device state for each run
            AuditOutbox.objects.bulk_create(AuditOutbox(seq=s, created=c) for s, c in events)
            (tmp / "audit.jsonl").unlink(missing_ok=True)
            s3_prefix = f"portal{n}"
            settings.PORTAL_AUDIT_DEVICES = [
                s.replace("bench-audit-events/portal", f"bench-audit-events/{s3_prefix}").replace(
                    ":events", f":events{n}"
                )
                for s in specs
            ]
        AuditDeviceCursor.objects.all().delete()
        start = time.perf_counter()
        report = audit_devices.ship(batch=batch)
        seconds = time.perf_counter() - start
        shipped = min(report.delivered.values())
        if report.errors or shipped != len(events):
            raise SystemExit(f"shipping failed: {report.errors or report.delivered}")
        print(f"shipped to {name:<15}: {shipped / seconds:8.0f} events/s ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
