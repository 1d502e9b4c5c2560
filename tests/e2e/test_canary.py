"""The canary test, end to end: a secret value leaves Secrets Manager only in a permitted reveal.

Secrets are seeded with unique canary values; Chromium drives every flow of ``flows.py``; then
the run id of the canaries is searched for in every response the browsers received (body, headers,
URL) except what a permitted reveal may show (and, on the editor's own pages, the values that
request typed), every row of every database table (sessions
decoded), every log record, every cache entry, every email, the downloaded audit exports, and the browsers' localStorage,
sessionStorage and cookies. Any hit fails the test, naming where.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from django.contrib.sessions.backends.db import SessionStore
from django.core import mail
from django.core.cache import caches
from django.db import connection
from django.urls import Resolver404, resolve

from .browsing import ARTIFACTS, Browsing, Recorded
from .flows import (
    FLOWS,
    PERMITTED_ECHOES,
    PERMITTED_REVEALS,
    Canaries,
    CanaryRun,
    seed,
    storage_text,
)


class Search:
    """Counts what was searched and collects hits as ``"<where>: <cell>"``."""

    def __init__(self, canaries: Canaries) -> None:
        self.canaries = canaries
        self.pattern = re.compile(rf"CANARY{canaries.run}x\d{{3}}|{canaries.run}")
        self.searched: dict[str, int] = {}
        self.hits: list[str] = []

    def look(
        self, place: str, where: str, text: str, allowed: frozenset[str] = frozenset()
    ) -> None:
        self.searched[place] = self.searched.get(place, 0) + 1
        for value in allowed:
            text = text.replace(value, "")
        for match in sorted(set(self.pattern.findall(text))):
            cell = self.canaries.values.get(match, "part of a value")
            self.hits.append(f"{place} {where}: {match} ({cell})")


def _permitted(recorded: Any, canaries: Canaries) -> frozenset[str] | None:
    """The values a response may hold, or ``None`` when it is no permitted reveal."""
    if recorded.method != "POST" or recorded.status != 200:
        return None
    try:
        match = resolve(recorded.path)
    except Resolver404:
        return None
    cells_of = PERMITTED_REVEALS.get(match.view_name)
    if cells_of is None:
        return None
    cells = cells_of(recorded)
    return frozenset(v for v, cell in canaries.values.items() if cell in cells)


def _echoed(recorded: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The typed values ``(a request may hold, its response may hold)`` on the editor's pages."""
    if recorded.method != "POST":
        return frozenset(), frozenset()
    try:
        match = resolve(recorded.path)
    except Resolver404:
        return frozenset(), frozenset()
    statuses, typed_in = PERMITTED_ECHOES.get(match.view_name, (frozenset(), lambda r: set()))
    typed = frozenset(typed_in(recorded))
    return typed, typed if recorded.status in statuses else frozenset()


def _search_responses(search: Search, browsers: dict[str, Browsing]) -> tuple[int, int]:
    reveals = echoes = 0
    for label, browsing in browsers.items():
        for r in browsing.responses:
            allowed = _permitted(r, search.canaries)
            if allowed:  # a permitted reveal of a canary cell: it shows that value
                reveals += 1
                assert any(v.encode() in r.body for v in allowed), r.url
            in_request, in_response = _echoed(r)
            if in_response & set(search.canaries.values):
                echoes += 1
            text = r.body.decode(errors="replace") + json.dumps(r.headers) + r.url
            where = f"{r.method} {r.url} ({label})"
            search.look("response", where, text, (allowed or frozenset()) | in_response)
            search.look("request", where, r.request_body.decode(errors="replace"), in_request)
    return reveals, echoes


def _search_database(search: Search) -> None:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from introspection
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                record = dict(zip(columns, row, strict=True))
                if table == "django_session":
                    record["decoded"] = SessionStore().decode(record["session_data"])
                search.look("database", f"table {table}", repr(record))


def _search_cache(search: Search) -> None:
    for alias in caches:
        store = getattr(caches[alias], "_cache", None)
        assert store is not None, f"cache {alias}: only the local-memory cache can be searched"
        for key, value in list(store.items()):
            search.look("cache", f"{alias} {key}", key + repr(pickle.loads(value)) + repr(value))  # noqa: S301 - our own cache


def _search_logs(search: Search, records: list[logging.LogRecord]) -> None:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        search.look("log", record.name, formatter.format(record) + repr(record.__dict__))


def test_canary_values_appear_nowhere_but_permitted_reveals(
    browse: Any, make_secret: Any, caplog: Any, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    canaries = Canaries()
    seed(make_secret, canaries)
    run = CanaryRun(open_browser=browse, canaries=canaries, settings=settings)
    for step in FLOWS:
        step(run)
    run.snapshot_storage("at the end")

    search = Search(canaries)
    reveals, echoes = _search_responses(search, run.browsers)
    _search_database(search)
    _search_cache(search)
    _search_logs(search, caplog.records)
    for where, storage in run.storage_snapshots:
        search.look("browser storage", where, storage_text(storage))
    for filename, text in run.downloads:
        search.look("audit export", filename, text)
    for email in mail.outbox:  # the body as sent and as written (the former may be encoded)
        text = email.message().as_string() + email.subject + email.body + repr(email.to)
        search.look("email", str(email.subject), text)

    report = {
        "flows": [f.__name__ for f in FLOWS],
        "canaries": len(canaries.values),
        "permitted_reveals": reveals,
        "permitted_echoes": echoes,
        "emails": len(mail.outbox),
        "searched": search.searched,
        "hits": search.hits,
    }
    (ARTIFACTS / "canary-report.json").write_text(json.dumps(report, indent=2))
    print("canary report:", json.dumps(report))
    assert reveals >= 3  # the flows did reveal: the search had something to miss
    assert echoes >= 4  # review, back to the editor, conflict, re-apply: typed canaries echoed
    assert len(run.downloads) >= 4
    assert search.searched.get("email", 0) >= 2  # a request opened (approvers) and applied (author)
    assert search.searched["response"] > 50 and search.searched["database"] > 10
    assert not search.hits, "values found where they must not be:\n" + "\n".join(search.hits)


def test_the_editor_may_echo_only_what_that_request_typed() -> None:
    """The allowance for the editor's pages is exactly the values posted in the same request:
    not other values, not other statuses (a 302 has no body to hold them), not other views."""
    typed = {'set:["dev","stripe","key"]': "TYPED-1", 'new-value:["sandbox"]': "TYPED-2"}
    body = urlencode({**typed, "new-key": "key", "base_version_id": "v1", "step": "review"})
    edit = Recorded("POST", "http://x/secrets/a-secrets/edit/", "document", 200, {}, b"", b"")
    edit = replace(edit, request_body=body.encode())
    assert _echoed(edit) == ({"TYPED-1", "TYPED-2"}, {"TYPED-1", "TYPED-2"})
    assert _echoed(replace(edit, status=409))[1] == {"TYPED-1", "TYPED-2"}
    assert _echoed(replace(edit, status=302)) == ({"TYPED-1", "TYPED-2"}, frozenset())
    assert _echoed(replace(edit, method="GET")) == (frozenset(), frozenset())
    reveal = replace(edit, url="http://x/secrets/a-secrets/reveal/")
    assert _echoed(reveal) == (frozenset(), frozenset())
    assert _echoed(replace(edit, request_body=b"step=review&base_version_id=v1")) == (
        frozenset(),
        frozenset(),
    )
