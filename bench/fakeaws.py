"""A moto server that counts the AWS calls it serves, for ``make bench`` and ``make load``.

Run as ``python bench/fakeaws.py PORT``. It serves moto's Secrets Manager (and every other moto
service) on 127.0.0.1:PORT and counts each request by its ``X-Amz-Target`` header
(``secretsmanager.ListSecrets`` ...), so the portal is measured from the outside, with no change
to its code. Two extra paths, answered before moto sees the request:

* ``GET /_bench/calls``: the counts since the last reset, as JSON ``{"ListSecrets": 110, ...}``;
* ``POST /_bench/calls/reset``: zero them;
* ``POST /_bench/latency/MS``: from now on, delay every AWS call by MS milliseconds (a modelled
  network round trip to AWS; 0 turns it off). Off by default.

This is a benchmark harness, never part of the portal (moto is not a production dependency).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

CALLS_PATH = "/_bench/calls"
LATENCY_PATH = "/_bench/latency/"


class CountingApp:
    """WSGI middleware: count Secrets Manager actions, then hand the request to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.latency = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == CALLS_PATH:
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == CALLS_PATH + "/reset":
            with self.lock:
                self.counts.clear()
            start_response("204 No Content", [])
            return [b""]
        if path.startswith(LATENCY_PATH):
            self.latency = int(path.removeprefix(LATENCY_PATH)) / 1000
            start_response("204 No Content", [])
            return [b""]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            with self.lock:
                self.counts[target.rpartition(".")[2]] += 1
            if self.latency:
                time.sleep(self.latency)
        return self.app(environ, start_response)


def main() -> None:
    port = int(sys.argv[1])
    app = CountingApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"fake AWS (moto, counting) on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
