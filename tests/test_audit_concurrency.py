"""Concurrent appends from several processes never fork the chain.

Each case migrates a database of its own (PostgreSQL at 127.0.0.1:5432, which ``.ci/run``
starts, or a SQLite file) and starts four processes appending 250 events each at once.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .scratch_db import ROOT, portal_env, run_writers, scratch_database

CHECK = """
import django; django.setup()
from secrets_admin import audit_verify
from secrets_admin.models import AuditEvent
result = audit_verify.verify()
seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
writers = sorted(set(AuditEvent.objects.values_list("detail__writer", flat=True)))
print(result.ok, result.checked, len(seqs), seqs == list(range(1, len(seqs) + 1)), writers)
"""


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_four_processes_appending_250_events_each_keep_one_chain(kind: str) -> None:
    with scratch_database(kind) as url:
        run_writers(url, writers=4, count=250)
        out = subprocess.run(
            [sys.executable, "-c", CHECK],
            env=portal_env(url),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    # verify() passes over 1,000 events; exactly 1,000 rows, numbered 1..1000; all writers in.
    assert out == "True 1000 1000 True ['w0', 'w1', 'w2', 'w3']"
