"""Locust users for ``make load`` (started by ``bench/load.py``, which sets the environment).

Each user is one signed-in engineer on one of the portal instances (round robin, as a load
balancer would spread them), mixing: list pages, searches, grids, reveals of a cell seen on a
grid, and saves of its own keys through ``bench/common.py: save_one_key`` (the save adapter).
Every save's expected final value is written to ``BENCH_RESULTS`` when the test stops, so
``bench/load.py`` can count saves lost against the final documents.

Environment: ``BENCH_PORTALS`` (comma-separated base URLs), ``BENCH_SESSIONS`` (JSON file of
session ids), ``BENCH_AWS_ENDPOINT``, ``BENCH_TEAM_SECRETS`` (comma-separated names),
``BENCH_APP_SECRETS`` (how many ``appNNNNN-secrets`` exist), ``BENCH_RESULTS`` (output path).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    SEARCHES,
    Editor,
    PortalClient,
    browser_headers,
    grid_cells,
    keep_cookies,
    save_one_key,
)

PORTALS = os.environ.get("BENCH_PORTALS", "http://127.0.0.1:8042").split(",")
SESSIONS: list[str] = json.loads(
    Path(os.environ.get("BENCH_SESSIONS", "/dev/null")).read_text() or "[]"
)
TEAM = [n for n in os.environ.get("BENCH_TEAM_SECRETS", "").split(",") if n]
APPS = int(os.environ.get("BENCH_APP_SECRETS", "0"))
_numbers = itertools.count()
#: (secret, key) -> the value this user saved last: what the final document must hold.
EXPECTED: dict[str, dict[str, str]] = {}
SAVES = {"landed": 0, "gave_up": 0, "conflicts": 0}


class Engineer(HttpUser):
    wait_time = between(0.5, 1.5)
    host = PORTALS[0]

    def on_start(self) -> None:
        self.number = next(_numbers)
        self.base = PORTALS[self.number % len(PORTALS)]
        self.origin = "https://" + self.base.removeprefix("http://")
        self.cookies = {"sessionid": SESSIONS[self.number % len(SESSIONS)]}
        self.seen: tuple[str, str, dict[str, str]] | None = None  # secret, version, cell
        self.editor: Editor | None = None
        self.saves = 0
        self.grid()

    # -- HTTP as a browser behind TLS termination ------------------------------------------

    def _send(self, method: str, path: str, name: str, **kw: Any) -> Any:
        headers = {**browser_headers(self.origin, self.cookies, method), **kw.pop("headers", {})}
        with self.client.request(
            method,
            self.base + path,
            name=name,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
            **kw,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            keep_cookies(self.cookies, response)
            return response

    # -- tasks -----------------------------------------------------------------------------

    @task(3)
    def list_page(self) -> None:
        self._send("GET", "/", "list", params={"page": str(random.randint(1, 10))})

    @task(3)
    def search(self) -> None:
        self._send(
            "GET",
            "/",
            "search",
            params={"q": random.choice(SEARCHES)},
            headers={"HX-Request": "true"},
        )

    @task(3)
    def grid(self) -> None:
        if TEAM and (random.random() < 0.6 or not APPS):
            name = random.choice(TEAM)
        else:
            name = f"app{random.randrange(APPS):05d}-secrets"
        response = self._send("GET", f"/secrets/{name}/", "grid")
        version, cells = grid_cells(response.text or "")
        if version and cells:
            self.seen = (name, version, random.choice(cells))

    @task(2)
    def reveal(self) -> None:
        if self.seen is None:
            return
        name, version, cell = self.seen
        self._send(
            "POST",
            f"/secrets/{name}/reveal/",
            "reveal",
            # Protected environments ask for a reason (recorded in the audit event).
            data={"version_id": version, "reason": "load test", **cell},
            headers={"HX-Request": "true"},
        )

    @task(1)
    def save(self) -> None:
        if not TEAM:
            return
        if self.editor is None:  # the save adapter's own HTTP client, on this user's session
            self.editor = Editor(None, PortalClient(self.base, self.cookies["sessionid"]))
        name = random.choice(TEAM)
        key = f"user{self.number:02d}_k{self.saves % 3}"
        value = f"v{self.number}-{self.saves}-{time.time():.6f}"
        self.saves += 1
        started = time.perf_counter()
        exception: Exception | None = None
        try:
            outcome = save_one_key(
                self.editor, name=name, environment="dev", service="loadtest", key=key, value=value
            )
            SAVES["conflicts"] += outcome.attempts - 1
            if outcome.landed:
                EXPECTED.setdefault(name, {})[key] = value
                SAVES["landed"] += 1
            else:
                SAVES["gave_up"] += 1
                exception = RuntimeError("the save gave up after its retries")
        except Exception as exc:
            exception = exc
        events.request.fire(
            request_type="EDIT",
            name="save (adapter)",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )


@events.test_stop.add_listener
def write_expectations(environment: Any, **kwargs: Any) -> None:
    path = os.environ.get("BENCH_RESULTS")
    if path:
        Path(path).write_text(json.dumps({"expected": EXPECTED, "saves": SAVES}))
