"""A throw-away database for tests and benchmarks that run the portal in other processes.

``scratch_database(kind)`` yields a ``DATABASE_URL`` for a migrated database of its own: a
SQLite file in a temporary directory, or a PostgreSQL database created on the server at
``PORTAL_TEST_POSTGRES_URL`` (default ``postgres://postgres@127.0.0.1:5432/postgres``, the
server ``.ci/run`` starts) and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "PORTAL_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)


def portal_env(database_url: str) -> dict[str, str]:
    """The environment a portal process needs to use ``database_url`` (test keys, no AWS)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORTAL_TESTING": "1",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PYTHONPATH": str(ROOT),
    }


@contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/audit.sqlite3"
            _migrate(url)
            yield url
        return
    name = f"portal_scratch_{uuid.uuid4().hex[:12]}"
    base = POSTGRES_URL.rsplit("/", 1)[0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{base}/{name}"
        _migrate(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        env=portal_env(url),
        check=True,
        cwd=ROOT,
    )


def run_writers(url: str, writers: int, count: int) -> list[float]:
    """Start ``writers`` processes appending ``count`` events each, all at once; return each
    one's seconds. Raises ``CalledProcessError`` when one fails."""
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.chain_worker", str(count), str(go), f"w{n}"],
                env=portal_env(url),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(writers)
        ]
        go.touch()
        seconds = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
            seconds.append(float(out.split()[-1]))
        return seconds
