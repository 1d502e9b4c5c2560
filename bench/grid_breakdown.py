"""Where the large grid's server time goes, step by step, outside any request.

Run by ``bench/run.py`` (``python bench/grid_breakdown.py`` prints JSON): times, as medians of
several runs in this process, each step the grid view performs after its AWS calls, on the same
large document ``make bench`` seeds. Needs no server, database or AWS (demo-free test settings).
"""

from __future__ import annotations

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


def grid_page(classified: Any) -> Any:
    """The grid part of ``reads.secret_open`` on a classified document (no AWS): one HMAC
    fingerprint, type and cell per value."""
    from secrets_admin import documents, permissions, reads

    page = reads.SecretPage(name="big-secrets", description=None)  # type: ignore[arg-type]
    page.version_id = "bench-version"
    grid = documents.grid(classified.document)
    page.environments = grid.environments
    page.protected = {env: permissions.is_protected(env) for env in grid.environments}
    previous = None
    for row in grid.rows:
        cells = []
        for env in grid.environments:
            if env in row.values:
                v = row.values[env]
                view = reads.CellView(
                    True, documents.value_type(v), documents.short(reads.fingerprint(v))
                )
            else:
                view = reads.CellView(False)
            cells.append((env, view))
        page.rows.append(
            reads.RowView(row.service, row.key, cells, first_of_service=row.service != previous)
        )
        previous = row.service
    return page


def main() -> None:
    import django

    django.setup()
    from django.template import engines

    from bench.common import ROOT, large_document
    from secrets_admin import documents

    text = large_document()
    classified = documents.classify(text)
    page = grid_page(classified)
    # The grid's rows exactly as secret_detail.html renders them (its <tbody>), masked cells and
    # reveal forms included, through the template engine.
    source = (ROOT / "templates" / "secrets_admin" / "secret_detail.html").read_text()
    body = source[source.index("<tbody>") : source.index("</tbody>") + len("</tbody>")]
    rows = engines["django"].from_string(body)
    context = {"secret": page, "can_reveal": True}
    result = {
        "parse and classify the 64 KiB document": timed(lambda: documents.classify(text)),
        "grid rows: 3,200 fingerprints (HMAC-SHA256) and cells": timed(
            lambda: grid_page(classified)
        ),
        "HTML of 3,200 cells (secret_detail.html's rows, template engine)": timed(
            lambda: rows.render(context), runs=5
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
