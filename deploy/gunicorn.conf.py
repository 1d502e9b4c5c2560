"""gunicorn settings for the image (``gunicorn -c deploy/gunicorn.conf.py``).

Prometheus multiprocess mode (secrets_admin/observability/metrics.py): every worker writes its
counters under ``PROMETHEUS_MULTIPROC_DIR``; the directory is emptied when the server starts (a
restarted container must not add the last run's counts) and an exited worker's live gauges are
dropped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

bind = "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# The portal logs one line per request itself (secrets_admin/observability/logs.py).
accesslog = None


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
