"""Work that may wait until the response has been sent: records derived from a write that has
landed (the list's structure summary, the hygiene index), never the write or its audit events.

:func:`defer` queues a callable while a request is being answered (the queue is opened by
:class:`AfterResponseMiddleware`) and runs it at once anywhere else (management commands,
direct calls in tests). The queue runs on Django's ``request_finished`` signal, which the WSGI
server sends when it closes the response, after the body went out: the person who saved sees
the redirect without waiting for the derived records, and the same worker writes them right
after. A failure there is logged; the derived records are rebuilt by the next read of the
secret or the next indexing run, so nothing is lost but time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django import db
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger(__name__)

_local = threading.local()


def defer(work: Callable[[], None]) -> None:
    """Run ``work`` after the current response has been sent, or now outside a request."""
    queue: list[Callable[[], None]] | None = getattr(_local, "queue", None)
    if queue is None:
        work()
    else:
        queue.append(work)


def run_deferred(**_: Any) -> None:
    """Run (and empty) this thread's queue; connected to ``request_finished``."""
    queue: list[Callable[[], None]] | None = getattr(_local, "queue", None)
    _local.queue = None
    if not queue:
        return
    for work in queue:
        try:
            work()
        except Exception:  # the response is gone: log, and let the next piece run
            logger.exception("work deferred until after the response failed")
    # Django tidied the connections on this signal before the work ran: tidy them again
    # (closed when CONN_MAX_AGE says so), unless a caller's transaction is still open.
    if not any(c.in_atomic_block for c in db.connections.all(initialized_only=True)):
        db.close_old_connections()


request_finished.connect(run_deferred, dispatch_uid="secrets_admin.after_response")


class AfterResponseMiddleware:
    """Open this thread's queue for the request; :func:`run_deferred` empties it when the
    server closes the response. A queue left over from a response that was never closed runs
    before the next request starts."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        run_deferred()
        _local.queue = []
        return self.get_response(request)
