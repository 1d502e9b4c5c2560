"""The flows the canary test drives in Chromium (issue 8, part 3), and where values may appear.

To cover a new feature, add a function decorated with ``@flow`` (it runs in the order of this
file, after sign-in) and, if its responses may legitimately show a value, an entry in
:data:`PERMITTED_REVEALS` saying which cells' values each such response may hold. Every other
response, the database, the logs, the cache, the emails and the browser's storage must hold none.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from playwright.sync_api import expect

from .browsing import REVEAL_SECONDS, Browsing, Recorded
from .pages import PAGES, post_form

Cell = tuple[str, str, str, str]  # secret, environment, service, key


def _form(recorded: Recorded) -> dict[str, str]:
    fields = parse_qs(recorded.request_body.decode(errors="replace"))
    return {k: v[-1] for k, v in fields.items()}


def _reveal_cells(recorded: Recorded) -> set[Cell]:
    form = _form(recorded)
    secret = recorded.path.split("/secrets/", 1)[1].rsplit("/reveal/", 1)[0]
    return {(secret, form.get("environment", ""), form.get("service", ""), form.get("key", ""))}


#: URL name -> the cells whose values a successful (200) POST response there may hold, read
#: from the request. A permitted response holding any other value still fails the test.
PERMITTED_REVEALS: dict[str, Callable[[Recorded], set[Cell]]] = {
    "secrets_admin:cell_reveal": _reveal_cells,
}


@dataclass
class Canaries:
    """Unique values seeded into secrets: ``values`` maps each to where it lives."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    values: dict[str, Cell] = field(default_factory=dict)

    def new(self, cell: Cell) -> str:
        value = f"CANARY{self.run}x{len(self.values):03d}"
        self.values[value] = cell
        return value

    def of(self, cell: Cell) -> str:
        return next(v for v, c in self.values.items() if c == cell)


APP = "canary-app-secrets"
ODD = "canary-odd-secrets"
BINARY = "canary-binary-secrets"
LEGACY = "canary-app-stripe-main"


def seed(make_secret: Callable[..., str], canaries: Canaries) -> None:
    """Secrets whose every value is a canary: conforming (with non-string leaves holding
    canaries too), non-conforming, binary, and a legacy one the list must not show."""
    doc: dict[str, Any] = {}
    for env in ("sandbox", "dev", "main"):
        doc[env] = {
            "stripe": {k: canaries.new((APP, env, "stripe", k)) for k in ("public", "secret")},
            "db": {
                "url": canaries.new((APP, env, "db", "url")),
                "pool": {"nested": canaries.new((APP, env, "db", "pool"))},
                "port": 5432,
            },
        }
    make_secret(APP, doc, Description="canary test: every value is a canary")
    make_secret(ODD, f"TOKEN={canaries.new((ODD, '', '', 'TOKEN'))}\n")
    make_secret(BINARY, binary=canaries.new((BINARY, "", "", "")).encode())
    make_secret(LEGACY, {"secret_key": canaries.new((LEGACY, "main", "stripe", "secret_key"))})


@dataclass
class CanaryRun:
    """What the flows share: a signed-in browser per user, the canaries and the reveals done."""

    open_browser: Callable[..., Browsing]
    canaries: Canaries
    settings: Any
    browsers: dict[str, Browsing] = field(default_factory=dict)
    storage_snapshots: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def as_user(self, user: str, *, javascript: bool = True) -> Browsing:
        label = user if javascript else f"{user}-nojs"
        if label not in self.browsers:
            browsing = self.open_browser(javascript=javascript, name=label)
            browsing.sign_in(user)
            self.browsers[label] = browsing
        return self.browsers[label]

    def snapshot_storage(self, where: str) -> None:
        """Keep the browsers' storage and cookies now (searched at the end)."""
        for label, browsing in self.browsers.items():
            self.storage_snapshots.append((f"{where} ({label})", browsing.storage()))


FLOWS: list[Callable[[CanaryRun], None]] = []


def flow(fn: Callable[[CanaryRun], None]) -> Callable[[CanaryRun], None]:
    FLOWS.append(fn)
    return fn


def _grid(app: str = APP) -> str:
    return f"/secrets/{app}/"


@flow
def list_and_search(run: CanaryRun) -> None:
    b = run.as_user("engineer")
    b.goto("/")
    expect(b.page.locator("#secret-table")).to_contain_text(APP)
    expect(b.page.locator("#secret-table")).not_to_contain_text(LEGACY)
    b.page.fill("#q", "canary")
    expect(b.page.locator("#secret-table")).to_contain_text("3 of")
    b.shot("search-canary")
    nojs = run.as_user("engineer", javascript=False)
    nojs.goto("/?q=canary")
    nojs.page.get_by_role("button", name="Refresh from AWS").click()


@flow
def open_every_grid(run: CanaryRun) -> None:
    for user in ("engineer", "auditor"):
        b = run.as_user(user)
        for name in (APP, ODD, BINARY):
            b.goto(_grid(name))
            b.shot(f"grid-{name}")
        b.goto(f"/secrets/{LEGACY}/", status=404)


@flow
def reveal_in_cell_remask_and_navigate(run: CanaryRun) -> None:
    b = run.as_user("engineer")
    b.goto(_grid())
    for env, service, key in (("main", "stripe", "secret"), ("dev", "db", "pool")):
        b.page.get_by_role("button", name=f"Reveal {env} {service} {key}").click()
        expected = run.canaries.of((APP, env, service, key))
        expect(b.page.locator("code.revealed").last).to_contain_text(expected)
    b.shot("revealed")
    run.snapshot_storage("while values are shown")
    # htmx 2 would snapshot this page into localStorage on navigating away; it must not.
    b.page.get_by_role("navigation").get_by_role("link", name="Secrets").click()
    b.page.go_back()
    expect(b.page.locator("table.grid")).to_be_visible()
    b.page.get_by_role("button", name="Reveal sandbox stripe public").click()
    expect(b.page.locator("code.revealed")).to_have_count(1)
    expect(b.page.locator("code.revealed")).to_have_count(0, timeout=(REVEAL_SECONDS + 3) * 1000)
    dom = b.page.content()
    leaked = [v for v in run.canaries.values if v in dom]
    assert not leaked, f"values still in the page after re-masking: {leaked}"
    b.shot("re-masked")
    run.snapshot_storage("after re-masking and navigating")


@flow
def reveal_without_javascript(run: CanaryRun) -> None:
    b = run.as_user("engineer", javascript=False)
    b.goto(_grid())
    b.page.get_by_role("button", name="Reveal dev stripe secret").click()
    expect(b.page.locator("code.revealed")).to_have_text(
        run.canaries.of((APP, "dev", "stripe", "secret"))
    )
    b.shot("revealed-page")
    b.page.go_back()


@flow
def refused_reveals(run: CanaryRun) -> None:
    """Reveals that must return no value: no role, a cell not in the version, the rate limit."""
    auditor = run.as_user("auditor")
    auditor.goto(_grid())
    version = auditor.page.locator("dl.facts dd code").first.inner_text()
    fields = {"version_id": version, "environment": "dev", "service": "stripe", "key": "secret"}
    auditor.allow_status(403)
    assert post_form(auditor.page, _grid() + "reveal/", fields) == 403
    engineer = run.as_user("engineer")
    engineer.goto(_grid())
    engineer.allow_status(409)
    missing = {**fields, "environment": "uat"}
    assert post_form(engineer.page, _grid() + "reveal/", missing) == 409
    engineer.goto(_grid())
    engineer.allow_status(429)
    default_rate, run.settings.PORTAL_REVEAL_RATE = run.settings.PORTAL_REVEAL_RATE, "1/h"
    engineer.page.get_by_role("button", name="Reveal main db url").click()
    expect(engineer.page.locator("code.revealed")).to_have_count(1)
    engineer.page.get_by_role("button", name="Reveal sandbox db url").click()
    expect(engineer.page.get_by_role("alert")).to_contain_text("Too many reveals")
    run.settings.PORTAL_REVEAL_RATE = default_rate


@flow
def every_page(run: CanaryRun) -> None:
    for spec in PAGES:
        if spec.user:
            b = run.as_user(spec.user)
            b.visit(spec)


@flow
def sign_out(run: CanaryRun) -> None:
    run.snapshot_storage("before signing out")
    for b in run.browsers.values():
        if b.page.get_by_role("button", name="Sign out").count():
            b.page.get_by_role("button", name="Sign out").click()
            expect(b.page).to_have_url(re.compile(r"/accounts/login/"))
    run.snapshot_storage("after signing out")


def storage_text(storage: dict[str, Any]) -> str:
    return json.dumps(storage, sort_keys=True)
