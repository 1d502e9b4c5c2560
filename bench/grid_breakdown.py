"""Where the large grid's server time goes, step by step, outside any request.

Run by ``bench/run.py`` (``python bench/grid_breakdown.py`` prints JSON): times, as medians of
several runs in this process, each step the grid view performs after its AWS calls, on the same
large document ``make bench`` seeds. Needs no server, database or AWS (demo-free test settings).
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_TESTING", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def timed(work: Callable[[], Any], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import django

    django.setup()
    from secrets_admin.templatetags.grid import grid_rows

    from bench.common import large_document
    from secrets_admin import documents, reads

    text = large_document()
    classified = documents.classify(text)
    shape = reads._shape(classified)
    stored = pickle.dumps(shape)
    page = reads.SecretPage(name="big-secrets", description=None)  # type: ignore[arg-type]
    page.environments, page.rows = shape.environments, shape.rows
    url = "/secrets/big-secrets/reveal/"
    result = {
        "parse and classify the 64 KiB document": timed(lambda: documents.classify(text)),
        "grid rows: 3,200 fingerprints (HMAC-SHA256) and cells": timed(
            lambda: reads._shape(classified)
        ),
        "store the version's shape in the cache (pickle)": timed(lambda: pickle.dumps(shape)),
        "read the version's shape back (unpickle)": timed(lambda: pickle.loads(stored)),  # noqa: S301 - our own bytes
        "HTML of 3,200 cells ({% grid_rows %})": timed(lambda: grid_rows(page, url, True)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
