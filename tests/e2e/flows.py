"""The flows the canary test drives in Chromium, and where values may appear.

To cover a new feature, add a function decorated with ``@flow`` (it runs in the order of this
file, after sign-in) and, if its responses may legitimately show a value, an entry in
:data:`PERMITTED_REVEALS` saying which cells' values each such response may hold (or, for a page
that carries back what the person typed, in :data:`PERMITTED_ECHOES`). Every other response, the
database, the logs, the cache, the emails, the audit exports and the browser's storage must hold
none. Values typed into the editor are canaries too (registered under the cell they were typed
into), so they are searched for everywhere like the seeded ones.
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
from .pages import PAGES, diff_with_previous, post_form, submit, type_value

Cell = tuple[str, str, str, str]  # secret, environment, service, key


def _form(recorded: Recorded) -> dict[str, str]:
    fields = parse_qs(recorded.request_body.decode(errors="replace"))
    return {k: v[-1] for k, v in fields.items()}


def _reveal_cells(recorded: Recorded) -> set[Cell]:
    """The one cell a reveal asked for: three fields, or the grid button's ``cell`` JSON."""
    form = _form(recorded)
    secret = recorded.path.split("/secrets/", 1)[1].rsplit("/reveal/", 1)[0]
    if "cell" in form:
        try:
            env, service, key = json.loads(form["cell"])
        except ValueError:
            return set()
        return {(secret, env, service, key)}
    return {(secret, form.get("environment", ""), form.get("service", ""), form.get("key", ""))}


#: URL name -> the cells whose values a successful (200) POST response there may hold, read
#: from the request. A permitted response holding any other value still fails the test.
PERMITTED_REVEALS: dict[str, Callable[[Recorded], set[Cell]]] = {
    "secrets_admin:cell_reveal": _reveal_cells,
}


def _typed_values(recorded: Recorded) -> set[str]:
    """The values the person typed in the editor and posted (``set:...`` and ``new-value:...``
    fields of the request; the review and conflict pages repost them as ``set:...``)."""
    fields = parse_qs(recorded.request_body.decode(errors="replace"))
    return {
        value
        for name, values in fields.items()
        if name.startswith(("set:", "new-value:"))
        for value in values
        if value
    }


#: URL name -> (the statuses of POST responses that may echo, the values they may echo, read
#: from the request). The editor keeps edits in the browser only (no drafts on the server), so
#: the review (200), "back to the editor" (200, or 400 with a form problem) and the conflict page
#: (409) carry the values *this request* posted back in hidden fields. The request itself may
#: hold them too. Any other value in those responses, or a typed value anywhere else, is a hit.
PERMITTED_ECHOES: dict[str, tuple[frozenset[int], Callable[[Recorded], set[str]]]] = {
    "secrets_admin:secret_edit": (frozenset({200, 400, 409}), _typed_values),
    "secrets_admin:secret_edit_review": (frozenset({200, 400, 409}), _typed_values),
    "secrets_admin:secret_edit_save": (frozenset({200, 400, 409}), _typed_values),
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
    downloads: list[tuple[str, str]] = field(default_factory=list)  # (file name, text)

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


def _saved(b: Browsing) -> None:
    expect(b.page.get_by_text("Saved as version")).to_be_visible()


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
    b.page.get_by_label(re.compile("^Reason for revealing")).fill("canary run")  # main asks
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
    engineer.page.get_by_label(re.compile("^Reason for revealing")).fill("canary run")  # main
    engineer.page.get_by_role("button", name="Reveal main db url").click()
    expect(engineer.page.locator("code.revealed")).to_have_count(1)
    engineer.page.get_by_role("button", name="Reveal sandbox db url").click()
    expect(engineer.page.get_by_role("alert")).to_contain_text("Too many reveals")
    run.settings.PORTAL_REVEAL_RATE = default_rate


@flow
def edit_review_and_save(run: CanaryRun) -> None:
    """Change one cell and add a key (both typed canaries), review, go back, review, save; then
    reveal the new value on the grid."""
    b = run.as_user("engineer")
    b.goto(_grid() + "edit/")
    changed = run.canaries.new((APP, "dev", "stripe", "secret"))
    added = run.canaries.new((APP, "sandbox", "stripe", "added"))
    type_value(b.page, "dev", "stripe", "secret", changed)
    row = b.page.locator("#new-keys tr").first
    row.get_by_label("Service", exact=True).fill("stripe")
    row.get_by_label("Key", exact=True).fill("added")
    row.get_by_label("Value in sandbox").fill(added)
    b.shot("editor-typed")
    assert submit(b.page, b.page.get_by_role("button", name="Review changes")) == 200
    expect(b.page.locator("dl.facts")).to_contain_text("1 added, 1 changed, 0 removed")
    assert changed not in b.page.locator("main").inner_text()  # masked: fingerprints only
    b.shot("review")
    assert submit(b.page, b.page.get_by_role("button", name="Back to the editor")) == 200
    field = b.page.get_by_label("New value for dev stripe secret", exact=True)
    expect(field).to_have_value(changed)  # the edits came back from the browser's own form
    assert submit(b.page, b.page.get_by_role("button", name="Review changes")) == 200
    submit(b.page, b.page.get_by_role("button", name="Save as one new version"))
    _saved(b)
    b.page.get_by_role("button", name="Reveal dev stripe secret").click()
    expect(b.page.locator("code.revealed")).to_have_text(changed)
    b.shot("saved-and-revealed")


@flow
def conflict_from_a_second_browser(run: CanaryRun) -> None:
    """Two people edit the same cell; the second save shows base / theirs / yours."""
    cell = (APP, "dev", "db", "url")
    mine, theirs = run.as_user("engineer"), run.as_user("approver")
    for b in (mine, theirs):
        b.goto(_grid() + "edit/")
        type_value(b.page, *cell[1:], run.canaries.new(cell))
        assert submit(b.page, b.page.get_by_role("button", name="Review changes")) == 200
    submit(theirs.page, theirs.page.get_by_role("button", name="Save as one new version"))
    _saved(theirs)
    mine.allow_status(409)
    status = submit(mine.page, mine.page.get_by_role("button", name="Save as one new version"))
    assert status == 409
    facts = mine.page.locator("dl.facts")
    for side in ("Base", "Theirs", "Yours"):
        expect(facts).to_contain_text(side)
    versions = facts.locator("dd code").all_inner_texts()
    assert len(set(versions)) == 3, versions
    mine.shot("conflict")
    mine.page.get_by_role("button", name="Reveal theirs dev db url").click()
    expect(mine.page.locator("code.revealed")).to_have_count(1)
    reapply = mine.page.get_by_role("button", name="Re-apply my edits on the current version")
    assert submit(mine.page, reapply) == 200
    submit(mine.page, mine.page.get_by_role("button", name="Save as one new version"))
    _saved(mine)


@flow
def history_diff_and_restore(run: CanaryRun) -> None:
    """The history, a version diff (with a reveal), and dev restored to the first version."""
    b = run.as_user("engineer")
    b.goto(_grid() + "history/")
    expect(b.page.locator("table.history tbody tr")).to_have_count(5)  # 1 + 3 saves + 1 staged
    b.shot("history")
    assert diff_with_previous(b.page) == 200
    b.page.get_by_role("button", name="Reveal after dev db url").click()
    expect(b.page.locator("code.revealed")).to_have_count(1)
    b.shot("version-diff")
    b.goto(_grid() + "history/")
    restore = b.page.locator("form.restore").last
    restore.get_by_label("Environment to restore").select_option("dev")
    assert submit(b.page, restore.get_by_role("button", name="Restore to this version…")) == 200
    expect(b.page.locator("dl.facts")).to_contain_text("0 added, 2 changed, 0 removed")
    b.shot("restore-review")
    submit(b.page, b.page.get_by_role("button", name="Save as one new version"))
    _saved(b)
    b.shot("restored")
    nojs = run.as_user("engineer", javascript=False)
    nojs.goto(_grid() + "history/")
    assert diff_with_previous(nojs.page) == 200
    expect(nojs.page.locator("table.diff")).to_be_visible()
    nojs.shot("version-diff")


@flow
def create_secret(run: CanaryRun) -> None:
    b = run.as_user("admin")
    b.goto("/create/")
    b.page.get_by_label("Repository name").fill("canary-created")
    assert submit(b.page, b.page.get_by_role("button", name="Create secret")) == 200
    expect(b.page.get_by_role("heading", name="canary-created-secrets")).to_be_visible()
    b.shot("created")


@flow
def read_only_pages(run: CanaryRun) -> None:
    """Environment diff, integration and compliance, with JavaScript and without."""
    for javascript in (True, False):
        b = run.as_user("engineer", javascript=javascript)
        b.goto(_grid() + "diff/?a=dev&b=main")
        b.page.locator("select[name=b]").select_option("sandbox")
        if not javascript:
            submit(b.page, b.page.get_by_role("button", name="Compare"))
        expect(b.page.locator("#comparison")).to_contain_text("sandbox")
        b.page.get_by_role("button", name="Reveal sandbox stripe public").first.click()
        expect(b.page.locator("code.revealed")).to_have_count(1)
        b.goto(_grid() + "diff/")
        b.shot("environment-diff")
        b.goto(_grid() + "integration/")
        b.shot("integration")
        auditor = run.as_user("auditor", javascript=javascript)
        auditor.goto("/compliance/")
        submit(auditor.page, auditor.page.get_by_role("link", name="All"))
        auditor.shot("compliance")


@flow
def hygiene_pages(run: CanaryRun) -> None:
    """The account-wide index, filled by a scan, and the four hygiene pages read from it."""
    from secrets_admin import index

    index.scan()
    b = run.as_user("auditor")
    b.goto("/hygiene/services/?environment=main&service=stripe&presence=present")
    expect(b.page.locator("table.matrix")).to_contain_text(APP.removesuffix("-secrets"))
    b.shot("service-matrix")
    for path, name in (
        ("/hygiene/reuse/", "credential-reuse"),
        ("/hygiene/stale/", "credential-staleness"),
        ("/hygiene/adoption/?sort=-passed", "standard-adoption"),
    ):
        b.goto(path)
        b.shot(name)
    b.goto(_grid())  # the grid with its reuse markers (none here: every canary is unique)


@flow
def audit_log_export_and_verify(run: CanaryRun) -> None:
    """The log, filtered; the chain check; CSV and JSON Lines exports downloaded and kept for the
    search, with JavaScript and without."""
    for javascript in (True, False):
        b = run.as_user("auditor", javascript=javascript)
        b.goto("/audit/")
        b.page.get_by_label("Secret").fill(APP)
        if javascript:
            with b.page.expect_response(lambda r: "/audit/?" in r.url):
                b.page.get_by_role("button", name="Filter").click()
        else:
            submit(b.page, b.page.get_by_role("button", name="Filter"))
        expect(b.page.locator("#audit-table")).to_contain_text(APP)
        b.shot("audit-log-filtered")
        for fmt, button in (("csv", "Export CSV"), ("jsonl", "Export JSON Lines")):
            with b.page.expect_download() as download:
                b.page.get_by_role("button", name=button).click()
            text = download.value.path().read_text()
            rows = text.splitlines()
            assert len(rows) > (6 if fmt == "csv" else 5), rows  # header + the secret's events
            assert all(APP in row for row in rows[1 if fmt == "csv" else 0 :]), rows
            run.downloads.append((download.value.suggested_filename, text))
        if javascript:
            b.page.get_by_role("button", name="Verify the chain").click()
            expect(b.page.locator("#audit-verify")).to_contain_text("intact")
        else:
            submit(b.page, b.page.get_by_role("button", name="Verify the chain"))
            expect(b.page.locator("main")).to_contain_text("intact")
        b.shot("audit-verified")


@flow
def propose_and_approve(run: CanaryRun) -> None:
    """An edit of ``main`` (protected) with a typed canary opens a change request (the emails
    to the approvers go out); the author's page offers no Approve; the approver opens it from
    the list, reveals the proposed and the current value, and approves (the author's email goes
    out); the grid's reveal then shows the typed value."""
    cell = (APP, "main", "stripe", "secret")
    author, approver = run.as_user("engineer"), run.as_user("approver")
    author.goto(_grid() + "edit/")
    typed = run.canaries.new(cell)
    type_value(author.page, *cell[1:], typed)
    assert submit(author.page, author.page.get_by_role("button", name="Review changes")) == 200
    propose = author.page.get_by_role("button", name="Propose change request")
    assert submit(author.page, propose) == 200
    expect(author.page.get_by_text("Nothing is saved yet")).to_be_visible()
    expect(author.page.get_by_role("button", name="Approve")).to_have_count(0)
    author.shot("change-request-proposed")
    approver.goto("/changes/?show=waiting")
    row = approver.page.locator("table.grid tbody tr").filter(has_text=APP)
    assert submit(approver.page, row.get_by_role("link").first) == 200
    for side in ("proposed", "current"):
        approver.page.get_by_label(f"Reason for revealing {side} main stripe secret").fill("review")
        approver.page.get_by_role("button", name=f"Reveal {side} main stripe secret").click()
    expect(approver.page.locator("code.revealed")).to_have_text([run.canaries.of(cell), typed])
    approver.shot("change-request-revealed")
    approver.page.get_by_label("Comment (optional)").fill("looks right")
    submit(approver.page, approver.page.get_by_role("button", name="Approve"))
    expect(approver.page.get_by_text(re.compile(r"is applied"))).to_be_visible()
    approver.shot("change-request-applied")
    approver.goto(_grid())
    approver.page.get_by_label(re.compile("^Reason for revealing")).fill("check what landed")
    approver.page.get_by_role("button", name="Reveal main stripe secret").click()
    expect(approver.page.locator("code.revealed")).to_have_text(typed)


@flow
def every_page(run: CanaryRun) -> None:
    for spec in PAGES:
        if spec.user and spec.canary:
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
