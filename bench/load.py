"""``make load``: 50 users for 60 s against two portal instances sharing PostgreSQL and Redis.

Starts the counting moto server (``bench/fakeaws.py``), seeds 1,000 unified secrets (plus 100 of
other names) and 20 team secrets, starts two portal instances (gunicorn, two sync workers each,
production settings) on two loopback ports sharing the PostgreSQL database ``portal_load`` and
Redis db 5, signs in 50 engineers, and runs locust headless (``bench/locustfile.py``): list
pages, searches, grids, reveals and saves (through the save adapter). Then it reports requests
per second and p50/p95/p99 per endpoint, errors, the AWS calls made, saves landed versus lost
(checked against the final documents) and ``manage.py audit_verify``, and appends the tables
to ``BENCHMARKS.md``.

Usage: ``python bench/load.py [--users 50] [--seconds 60]``. Loopback only; every process it
starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    HARNESS,
    PYTHON,
    ROOT,
    SEARCHES,
    SUFFIX,
    VENV_BIN,
    FakeAws,
    Portal,
    PortalClient,
    Services,
    bench_port,
    editing_document,
    grid_cell,
    machine_description,
    markdown_table,
    mint_sessions,
    portal_env,
    prepare_database,
    seed,
)

APPS = 1000
TEAMS = [f"team{n:02d}{SUFFIX}" for n in range(20)]
SECTION = "## Load test"


def warm_up(portals: list[Portal], session: str) -> None:
    """The first listing, and a few requests per instance so every worker has loaded its
    templates and its boto3 client (botocore's service model) before the users arrive."""
    for portal in portals:
        client = PortalClient(portal, session)
        for n in range(3 * portal.workers):
            client.get("/")
            client.get(f"/secrets/{TEAMS[n % len(TEAMS)]}/")


#: Sequential requests per endpoint in the CPU probe (after the load: bounded, a few seconds).
PROBE_REQUESTS = 60


def cpu_probe(portal: Portal, services: Services, sessions: list[str]) -> dict[str, float]:
    """CPU milliseconds the portal's workers spend per request of each read endpoint.

    One client at a time sends :data:`PROBE_REQUESTS` requests of one endpoint to ``portal``;
    the workers' CPU time (``/proc/PID/stat``, user + system) before and after, divided by the
    requests, is that endpoint's cost. Sequential requests from one client leave nothing else
    running in the workers, so the figure is the endpoint's own work, whatever else loads the
    machine. Grids alternate team secrets (31 cells) and app secrets (4 cells) as the load
    does: first with the grid cache emptied ("grid, first view"; a portal without a grid cache
    reads every view afresh anyway), then the same views again ("grid, version seen before").
    Before each kind, a due listing refresh is started and waited for (it would otherwise be
    counted in whichever kind it fell on).
    Reveals rotate over the signed-in engineers (each has its own reveal rate limit)."""
    clients = [PortalClient(portal, s) for s in sessions]
    grid_names = [
        TEAMS[n % len(TEAMS)] if n % 2 else f"app{n * 7 % APPS:05d}{SUFFIX}"
        for n in range(PROBE_REQUESTS)
    ]
    version, cell = grid_cell(clients[0].get(f"/secrets/{TEAMS[0]}/").text)

    def grid(n: int) -> requests.Response:
        return clients[n % len(clients)].get(f"/secrets/{grid_names[n]}/")

    probes: dict[str, Callable[[int], requests.Response]] = {
        "list": lambda n: clients[n % len(clients)].get("/", params={"page": str(n % 10 + 1)}),
        "search": lambda n: clients[n % len(clients)].get(
            "/", params={"q": SEARCHES[n % len(SEARCHES)]}, htmx=True
        ),
        "grid, first view": grid,
        "grid, version seen before": grid,
        "reveal": lambda n: clients[n % len(clients)].post(
            f"/secrets/{TEAMS[0]}/reveal/", data={"version_id": version, **cell}, htmx=True
        ),
    }
    out = {}
    for name, probe in probes.items():
        # A background listing refresh (and the indexing after it) runs in the workers too:
        # start the one that is due now and wait for it, so no kind's figure includes it.
        clients[0].get("/")
        services.wait_unlocked("listing")
        for n in range(2):  # each worker's first request of the kind is not timed
            probe(n)
        if name == "grid, first view":
            services.drop_cache("grid")
        before = portal.worker_cpu_seconds()
        for n in range(PROBE_REQUESTS):
            response = probe(n)
            if response.status_code != 200:
                raise RuntimeError(f"CPU probe {name}: HTTP {response.status_code}")
        out[name] = (portal.worker_cpu_seconds() - before) * 1000 / PROBE_REQUESTS
    return out


def _cpu(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.1f} ms"


def _cpu_cell(probe: dict[str, float], endpoint: str) -> str:
    """The probe's figure(s) for a locust endpoint: the grid has two (first view / seen before)."""
    if endpoint == "grid":
        return (
            f"{_cpu(probe.get('grid, first view'))} first view, "
            f"{_cpu(probe.get('grid, version seen before'))} seen before"
        )
    return _cpu(probe.get(endpoint))


def env_setting(name: str, default: str) -> str:
    """A portal setting as the bench passes it (the environment), else the portal's default."""
    return os.environ.get(name, default)


def run_locust(env: dict[str, str], users: int, seconds: int, workdir: Path) -> Path:
    prefix = workdir / "locust"
    cmd = [str(VENV_BIN / "locust"), "-f", str(HARNESS / "bench" / "locustfile.py"), "--headless"]
    cmd += [
        "--users",
        str(users),
        "--spawn-rate",
        str(max(1, users // 5)),
        "--run-time",
        f"{seconds}s",
    ]
    cmd += ["--csv", str(prefix), "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]
    done = subprocess.run(cmd, cwd=HARNESS, env=env, capture_output=True, text=True, check=False)
    (workdir / "locust.log").write_text(done.stdout + done.stderr)
    if not (workdir / "locust_stats.csv").exists():
        raise RuntimeError(f"locust wrote no statistics:\n{done.stderr[-3000:]}")
    return workdir / "locust_stats.csv"


def stats_rows(path: Path) -> tuple[list[list[str]], dict[str, Any]]:
    rows, total = [], {}
    with path.open() as f:
        for r in csv.DictReader(f):
            line = [
                r["Name"] if r["Name"] != "Aggregated" else "**all**",
                r["Request Count"],
                r["Failure Count"],
                f"{float(r['Requests/s']):.1f}",
                r["50%"] + " ms",
                r["95%"] + " ms",
                r["99%"] + " ms",
            ]
            rows.append(line)
            if r["Name"] == "Aggregated":
                total = r
    return rows, total


def lost_saves(fake: FakeAws, results: Path) -> tuple[int, int, dict[str, int]]:
    """(saves expected, saves missing from the final documents, save counters)."""
    data = json.loads(results.read_text())
    sm = fake.client()
    expected = missing = 0
    for name, keys in data["expected"].items():
        doc = json.loads(
            sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
        )
        final = doc.get("dev", {}).get("loadtest", {})
        for key, value in keys.items():
            expected += 1
            missing += final.get(key) != value
    return expected, missing, data["saves"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", default=str(HARNESS / "BENCHMARKS.md"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="portal-load-"))
    fake = FakeAws(bench_port(4), workdir / "fakeaws.log").start()
    portals: list[Portal] = []
    try:
        print(f"fake AWS on {fake.endpoint}; logs in {workdir}", flush=True)
        services = Services.for_bench("portal_load", 5)
        env = portal_env(fake, services)  # one SECRET_KEY for both: sessions work on either
        prepare_database(env)
        seed(
            fake.client,
            [f"app{i:05d}{SUFFIX}" for i in range(APPS)]
            + [f"app{i:05d}-stripe-dev" for i in range(APPS // 10)],
        )
        team_doc = json.dumps(editing_document(10) | {"uat": {"app": {"key_00": "uat-0"}}})
        seed(fake.client, TEAMS, text_for=lambda i: team_doc)
        for offset in (2, 3):
            portals.append(Portal(bench_port(offset), env, workdir, workers=2).start())
        sessions = mint_sessions(
            env, [f"load-engineer-{n:02d}" for n in range(args.users)], "engineer"
        )
        (workdir / "sessions.json").write_text(json.dumps(sessions))
        warm_up(portals, sessions[0])
        fake.reset_calls()
        locust_env = {
            **env,
            "BENCH_PORTALS": ",".join(p.base for p in portals),
            "BENCH_SESSIONS": str(workdir / "sessions.json"),
            "BENCH_AWS_ENDPOINT": fake.endpoint,
            "BENCH_TEAM_SECRETS": ",".join(TEAMS),
            "BENCH_APP_SECRETS": str(APPS),
            "BENCH_RESULTS": str(workdir / "saves.json"),
        }
        print(
            f"locust: {args.users} users, {args.seconds} s, instances {', '.join(p.base for p in portals)}",
            flush=True,
        )
        started = time.perf_counter()
        cpu_before = sum(p.worker_cpu_seconds() for p in portals)
        stats = run_locust(locust_env, args.users, args.seconds, workdir)
        elapsed = time.perf_counter() - started
        cpu_during = sum(p.worker_cpu_seconds() for p in portals) - cpu_before
        calls = fake.calls()
        probe = cpu_probe(portals[0], services, sessions)
        rows, total = stats_rows(stats)
        expected, missing, saves = lost_saves(fake, workdir / "saves.json")
        verify = subprocess.run(
            [PYTHON, "manage.py", "audit_verify"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        audit_line = (verify.stdout + verify.stderr).strip().splitlines()[-1]
        memory = [max(m[1] for m in p.worker_memory()) for p in portals]
        report = write_report(
            Path(args.out),
            args,
            rows,
            total,
            calls,
            elapsed,
            (expected, missing, saves),
            (verify.returncode, audit_line),
            memory,
            (cpu_during, probe),
        )
        print(report)
        failures = int(total.get("Failure Count", "1"))
        return 0 if failures == 0 and missing == 0 and verify.returncode == 0 else 1
    finally:
        for portal in portals:
            portal.stop()
        fake.stop()


def write_report(
    path: Path,
    args: Any,
    rows: list[list[str]],
    total: dict[str, Any],
    calls: dict[str, int],
    elapsed: float,
    saves: tuple[int, int, dict[str, int]],
    audit: tuple[int, str],
    memory: list[int],
    cpu: tuple[float, dict[str, float]],
) -> str:
    machine = machine_description()
    expected, missing, counters = saves
    cpu_during, probe = cpu
    requests_total = int(total.get("Request Count", 0) or 0)
    # The CPU probe's figure per endpoint next to locust's latency percentiles.
    rows = [[*r[:4], _cpu_cell(probe, r[0]), *r[4:]] for r in rows]
    table = markdown_table(
        ["endpoint", "requests", "errors", "req/s", "CPU per request", "p50", "p95", "p99"], rows
    )
    aws_rows = [[op, n, f"{n / elapsed:.1f}"] for op, n in sorted(calls.items())]
    aws = markdown_table(["AWS operation", "calls", "calls/s"], aws_rows)
    secrets_total = APPS + APPS // 10 + len(TEAMS)
    pages = -(-secrets_total // 100)
    listings = calls.get("ListSecrets", 0) / pages
    # A window of this run's length holds at most floor(elapsed / period) + 1 timed refreshes.
    timer = elapsed // int(env_setting("PORTAL_LIST_CACHE_SECONDS", "60")) + 1
    text = f"""{SECTION}

Written by `make load` (`bench/load.py`, `bench/locustfile.py`) on {machine["date"]}, commit
`{machine["commit"]}`, {machine["cores"]} cores, {machine["memory"]}; load average at the end
{machine["load"]}. {args.users} users (one engineer session each, think time 0.5-1.5 s) for
{args.seconds} s against **two portal instances** (gunicorn, 2 sync workers each, production
settings) on two loopback ports, spread round robin as a load balancer would, sharing
PostgreSQL (database `portal_load`) and Redis (db 5: listing cache, sessions); AWS is the
counting moto server with {APPS:,} unified secrets (+{APPS // 10} others) and {len(TEAMS)} team
secrets. Locust, both instances, moto, PostgreSQL and Redis share the same {machine["cores"]}
cores, so these figures bound the harness as much as the portal.

**CPU per request** is the portal workers' own CPU time (user + system, `/proc/PID/stat`), which
other processes on the shared machine disturb far less than latency: per endpoint, from
{PROBE_REQUESTS} sequential requests of that endpoint to one instance after the load (its
workers do nothing else meanwhile); under the load, both instances' workers used
{cpu_during:.1f} CPU s for {requests_total:,} requests ({_cpu(cpu_during * 1000 / max(requests_total, 1))}
per request; a save is 3 requests).

{table}

- **Errors:** {total.get("Failure Count", "?")} of {total.get("Request Count", "?")} requests.
- **Saves:** {counters["landed"]} landed, {counters["gave_up"]} gave up. **Lost: {missing}**: each
  user writes its own keys, so the last value it saved for each of the {expected} (secret, key)
  pairs must be in the final document, and {expected - missing} are. {counters["conflicts"]}
  saves answered 409 and were redone. Each save is three portal requests through the save
  adapter (editor page, review, save: the "save (adapter)" row times the three together);
  the portal rebases onto others' saves itself.
- **Listing:** {calls.get("ListSecrets", 0)} `ListSecrets` calls in all, {listings:.1f} listings
  of {pages} pages; the refresh timer alone (`PORTAL_LIST_CACHE_SECONDS`) allows at most
  {timer:.0f} listing{"s" if timer != 1 else ""} ({timer * pages:.0f} calls) in the {elapsed:.0f} s the load ran.
- **Audit:** `manage.py audit_verify` exit {audit[0]}: {audit[1]}
- **Peak worker memory** (VmHWM), per instance: {", ".join(f"{m / 1024:.0f} MiB" for m in memory)}.

AWS calls made during the run (both instances together):

{aws}
"""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    head = old.split(SECTION)[0].rstrip() + "\n\n"
    path.write_text(head + text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
