"""Where the large grid's server time goes, step by step, outside any request.

Run by ``bench/run.py`` (``python bench/grid_breakdown.py`` prints JSON): times, as medians of
several runs in this process, each step the grid view performs after its AWS calls, on the same
large document ``make bench`` seeds, through the portal's own functions (``secrets_admin.grid``).
Needs no server, database or AWS (test settings, local-memory cache).
"""

from __future__ import annotations

import dataclasses
import json
import os
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
    from django.core.cache import cache

    from bench.common import large_document
    from secrets_admin import documents, grid

    text = large_document()
    classified = documents.classify(text)
    model = grid.build_model("bench-version", classified)
    name, url = "big-secrets", "/secrets/big-secrets/reveal/"
    shown = [g for g in model.services if g.shown]
    expanded = [dataclasses.replace(g, shown=True) for g in model.services]
    cache.set("bench:rows", grid.render_rows(name, model, model.services, True, url))
    result = {
        "parse and classify the 64 KiB document (first view)": timed(
            lambda: documents.classify(text)
        ),
        "view model: 3,200 fingerprints (HMAC-SHA256), types and cells (first view)": timed(
            lambda: grid.build_model("bench-version", classified)
        ),
        f"HTML of the rows first shown ({sum(g.cells for g in shown):,} cells; first view)": timed(
            lambda: grid.render_rows(name, model, model.services, True, url), runs=5
        ),
        "HTML of all 3,200 cells (every service expanded)": timed(
            lambda: grid.render_rows(name, model, expanded, True, url),
            runs=3,
        ),
        "rows HTML from the cache (version seen before; local memory here, Redis in the portal)": timed(
            lambda: cache.get("bench:rows")
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
