"""Credential hygiene pages over a large index (a script, not a unit test).

    .venv/bin/python bench/hygiene_bench.py [--db postgres|sqlite] [--secrets 2000]
                                            [--environments 3] [--keys 20] [--runs 7]

Seeds a scratch database (``tests/scratch_db.py``) with an index of ``--secrets`` unified
secrets x ``--environments`` x ``--keys`` cells (default 2,000 x 3 x 20 = 120,000 cells, with a
few reused and many stale credentials, as an account would have) by ``bulk_create``, then
requests each hygiene page through Django's test client as an auditor and prints the server
time per page (median and slowest of ``--runs``, after one warm-up) and its SQL queries. AWS is
pointed at a closed port: a page that called AWS would fail, so every 200 shows the page answered
from the index alone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.scratch_db import portal_env, scratch_database  # noqa: E402

#: The goal per page (README "Credential hygiene"): server time in milliseconds.
GOAL_MS = 100.0
SERVICES = ("stripe", "databricks", "sentry", "postgres", "auth0", "openai", "slack", "twilio")


def seed(secrets: int, environments: int, keys: int) -> int:
    """Write the index in bulk; returns the number of cells."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from secrets_admin import documents
    from secrets_admin.models import IndexCell, IndexedSecret

    rng = random.Random(17)  # the same index on every run
    key = settings.PORTAL_FINGERPRINT_KEY.encode()
    envs = ["sandbox", "dev", "main", "uat", "qa"][:environments]
    now = timezone.now()
    rows = []
    layouts = []
    for i in range(secrets):
        services = rng.sample(SERVICES, k=max(1, keys // 4))
        per_env = {s: 0 for s in services}
        names = [(services[k % len(services)], f"key_{k}") for k in range(keys)]
        for s, _ in names:
            per_env[s] += 1
        layout = {env: dict(per_env) for env in envs}
        layouts.append(names)
        rows.append(
            IndexedSecret(
                name=f"repo-{i:05d}-secrets",
                unified=True,
                version_id=f"{i:032x}",
                kind="conforming",
                environments=envs,
                layout=layout,
                rotation_enabled=i % 50 == 0,
                next_rotation=now + timedelta(days=i % 30) if i % 50 == 0 else None,
                pending_versions=[f"{i:031x}p"] if i % 200 == 0 else [],
                indexed_at=now,
            )
        )
    IndexedSecret.objects.bulk_create(rows, batch_size=1000)
    ids = dict(IndexedSecret.objects.values_list("name", "id"))
    cells = []
    shared = documents.fingerprint(key, "shared-across-repositories")
    for i, (row, names) in enumerate(zip(rows, layouts, strict=True)):
        secret_id = ids[row.name]
        for env in envs:
            for k, (service, name) in enumerate(names):
                value = f"{row.name}/{env}/{service}/{name}"
                if i % 40 == 0 and k == 0:  # a production credential also in other environments
                    value = f"{row.name}/reused"
                if i % 100 == 1 and k == 1 and env == "dev":  # one credential in many repositories
                    fp = shared
                else:
                    fp = documents.fingerprint(key, value)
                cells.append(
                    IndexCell(
                        secret_id=secret_id,
                        version_id=row.version_id,
                        environment=env,
                        service=service,
                        key=name,
                        value_type="string",
                        fingerprint=fp,
                        empty=k == keys - 1 and i % 25 == 0,
                        credential=k < keys - 2 and not (k == keys - 1 and i % 25 == 0),
                        changed_at=now - timedelta(days=rng.randint(0, 400)),
                        changed_how="history",
                        changed_version=row.version_id,
                    )
                )
    held = Counter(c.fingerprint for c in cells if c.credential)
    for c in cells:  # what index.recount_shared keeps when the index is written cell by cell
        c.shared = c.credential and held[c.fingerprint] > 1
    IndexCell.objects.bulk_create(cells, batch_size=5000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # what autovacuum does after a bulk load
            cursor.execute("VACUUM ANALYZE")
    return len(cells)


@dataclass
class Figures:
    """One page: server time (ms) on the first view after an index change (``cold``: derived
    from the database) and on later views (``warm``: from the cache until the index changes);
    CPU time of this process per view (SQLite runs in-process; PostgreSQL's own time shows in
    the wall time only): on a shared machine the steadier figure."""

    page: str
    cold: list[float] = field(default_factory=list)
    cold_cpu: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    warm_cpu: list[float] = field(default_factory=list)
    queries: int = 0
    size: int = 0


def measure(runs: int) -> list[Figures]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from secrets_admin import index
    from secrets_admin.permissions import Role, set_role

    user = get_user_model().objects.create_user(username="bench-auditor")
    set_role(user, [Role.AUDITOR])
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    pages = [
        ("service matrix", "secrets_admin:service_matrix", {}),
        (
            "service matrix: lacking databricks in main",
            "secrets_admin:service_matrix",
            {"environment": "main", "service": "databricks", "presence": "missing"},
        ),
        ("service matrix CSV (all repositories)", "secrets_admin:service_matrix_export", {}),
        ("reused credentials", "secrets_admin:credential_reuse", {}),
        ("stale credentials", "secrets_admin:credential_staleness", {}),
        (
            "stale credentials in main",
            "secrets_admin:credential_staleness",
            {"environment": "main"},
        ),
        ("adoption of the standard", "secrets_admin:standard_adoption", {}),
        ("adoption sorted by stale", "secrets_admin:standard_adoption", {"sort": "-stale"}),
    ]
    out = []
    for label, name, query in pages:
        url = reverse(name)
        response = client.get(url, query)  # warm-up (templates, first queries)
        assert response.status_code == 200, (label, response.status_code)
        figures = Figures(label)
        for _ in range(runs):
            index.bump_generation()  # as after any index write
            for wall, cpu in ((figures.cold, figures.cold_cpu), (figures.warm, figures.warm_cpu)):
                with CaptureQueriesContext(connection) as queries:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    response = client.get(url, query)
                    wall.append((time.perf_counter() - start) * 1000)
                    cpu.append((time.process_time() - start_cpu) * 1000)
                assert response.status_code == 200, (label, response.status_code)
                if wall is figures.cold:
                    figures.queries = len(queries)
        figures.size = len(response.content)
        out.append(figures)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--environments", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with scratch_database(args.db) as url:
        os.environ.update(portal_env(url))
        os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # closed: no page may call AWS
        import django

        django.setup()
        start = time.perf_counter()
        cells = seed(args.secrets, args.environments, args.keys)
        print(
            f"database: {args.db} (scratch)  cpus: {os.cpu_count()}  index: {args.secrets:,} "
            f"secrets, {cells:,} cells, seeded in {time.perf_counter() - start:.1f} s"
        )
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(
            "server time per page, median of the runs (ms); cold = first view after an index "
            "change, warm = later views"
        )
        print(
            f"{'page':44} {'cold':>7} {'cpu':>6} {'warm':>7} {'cpu':>6} {'queries':>8} {'bytes':>9}"
        )
        worst = 0.0
        med = statistics.median
        for f in measure(args.runs):
            worst = max(worst, med(f.cold))
            print(
                f"{f.page:44} {med(f.cold):7.1f} {med(f.cold_cpu):6.1f} {med(f.warm):7.1f} "
                f"{med(f.warm_cpu):6.1f} {f.queries:8d} {f.size:9,d}"
            )
        verdict = "within" if worst <= GOAL_MS else "OVER"
        print(
            f"slowest cold median {worst:.1f} ms: {verdict} the {GOAL_MS:.0f} ms goal "
            f"(load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
