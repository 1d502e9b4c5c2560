"""The portal in a real browser: sign in, search, open a grid, reveal and
re-mask, sign out; the same read-only pages with JavaScript off; htmx under the strict CSP; edit,
review and save; a conflict from a second browser context; history, version diff and restore;
create; environment diff, compliance, integration, the audit log with its export and chain check.
Sign-in through the test identity provider in Chromium is in ``tests/test_sso_browser.py``."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from secrets_admin import aws, documents, reads
from secrets_admin.models import AuditEvent

from .browsing import REVEAL_SECONDS
from .pages import diff_with_previous, submit, type_value

GRID = "/secrets/customer-portal-secrets/"


def grid_cell(page: Page, button_name: str) -> Locator:
    """The grid cell holding the named Reveal button (found by position: the button goes away)."""
    index = page.locator("td").evaluate_all(
        "(tds, name) => tds.findIndex(td => td.querySelector(`button[aria-label='${name}']`))",
        button_name,
    )
    assert index >= 0, button_name
    return page.locator("td").nth(index)


def test_sign_in_search_grid_reveal_remask_and_sign_out(browse: Any) -> None:
    b = browse()
    page = b.page
    b.goto("/")  # anonymous: sent to sign in
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    b.shot("sign-in-page")
    b.sign_in("engineer")
    expect(page.get_by_role("heading", name="Unified secrets")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("engineer")
    b.shot("list")

    page.fill("#q", "customer")  # htmx: only the table is replaced, the URL stays
    expect(page.locator("#secret-table")).to_contain_text("1 of 6 secrets match")
    expect(page.locator("#secret-table tbody tr")).to_have_count(1)
    assert page.url.endswith("/")
    b.shot("search")

    page.get_by_role("link", name="customer-portal-secrets").click()
    expect(page.get_by_role("heading", name="customer-portal-secrets")).to_be_visible()
    expect(page.locator("table.grid")).to_be_visible()
    b.shot("grid")

    cell = grid_cell(page, "Reveal dev stripe secret_key")
    cell.get_by_role("button").click()
    revealed = cell.locator("code.revealed")
    expect(revealed).to_have_text("sk_test_FAKEcustdev")
    expect(revealed).to_be_focused()
    assert page.url.endswith(GRID)  # htmx swapped the cell in place
    b.shot("revealed")
    assert AuditEvent.objects.filter(action="reveal", outcome="succeeded").count() == 1

    expect(revealed).to_have_count(0, timeout=(REVEAL_SECONDS + 3) * 1000)
    expect(cell.get_by_role("button", name="Reveal dev stripe secret_key")).to_be_visible()
    assert "sk_test_FAKEcustdev" not in page.content()
    storage = b.storage()
    assert storage["localStorage"] == "[]"  # no htmx history snapshot (historyCacheSize 0)
    session_keys = {k for k, _ in json.loads(storage["sessionStorage"])}
    assert session_keys <= {"htmx-current-path-for-history"}  # htmx keeps the path only
    b.shot("re-masked")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    b.shot("signed-out")
    b.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_read_only_pages_and_reveal_work_without_javascript(browse: Any, settings: Any) -> None:
    settings.PORTAL_LIST_PAGE_SIZE = 2
    b = browse(javascript=False)
    page = b.page
    b.sign_in("engineer")
    expect(page.get_by_role("heading", name="Unified secrets")).to_be_visible()
    expect(page.locator("#secret-table tbody tr")).to_have_count(2)
    b.shot("list-page-1")

    page.get_by_role("link", name="Next →").click()
    expect(page.locator(".pager")).to_contain_text("Page 2 of 3")
    b.shot("list-page-2")

    page.fill("#q", "inventory")
    page.get_by_role("button", name="Search").click()  # a plain GET form
    expect(page).to_have_url(re.compile(r"\?q=inventory$"))
    expect(page.locator("#secret-table tbody tr")).to_have_count(1)
    b.shot("search")

    page.get_by_role("link", name="inventory-api-secrets").click()
    expect(page.get_by_role("heading", name="Does not follow the standard")).to_be_visible()
    b.shot("non-standard-secret")

    b.goto(GRID)
    page.get_by_label(re.compile("^Reason for revealing")).fill("checking the live key")
    page.get_by_role("button", name="Reveal main stripe secret_key").click()  # a plain POST form
    expect(page.locator("h1")).to_have_text("main · stripe · secret_key")
    expect(page.locator("code.revealed")).to_have_text("sk_live_FAKEcustprod")
    b.shot("revealed-page")
    page.get_by_role("link", name="← Back to customer-portal-secrets").click()
    expect(page.locator("code.revealed")).to_have_count(0)

    page.get_by_role("navigation").get_by_role("link", name="Secrets").click()
    page.get_by_role("button", name="Refresh from AWS").click()
    expect(page.get_by_role("heading", name="Unified secrets")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    b.shot("signed-out")


def test_htmx_loads_from_static_with_no_inline_script_under_the_csp(browse: Any) -> None:
    """django-htmx's ``{% htmx_script %}`` emits only ``<script src>``: htmx runs (the search
    swaps the table) and the browser reports no CSP violation (checked by ``browse``)."""
    b = browse()
    b.sign_in("auditor")
    scripts = b.page.eval_on_selector_all(
        "script", "els => els.map(e => ({src: e.getAttribute('src'), text: e.textContent}))"
    )
    assert scripts and all(s["src"] and s["src"].startswith("/static/") for s in scripts)
    assert all(not s["text"].strip() for s in scripts)
    assert b.page.evaluate("typeof htmx") == "object"
    assert b.page.evaluate("htmx.config.historyCacheSize") == 0
    assert b.page.evaluate("htmx.config.allowEval") is False
    csp = next(r for r in b.responses if r.path == "/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    b.page.fill("#q", "zzz-nothing")
    expect(b.page.locator("#secret-table")).to_contain_text("Nothing matches")


def test_roles_shape_what_the_browser_offers(browse: Any) -> None:
    auditor = browse(name="auditor")
    auditor.sign_in("auditor")
    auditor.goto(GRID)
    expect(auditor.page.locator("table.grid")).to_be_visible()
    expect(auditor.page.get_by_role("button", name=re.compile("^Reveal"))).to_have_count(0)
    auditor.shot("auditor-grid")

    outsider = browse(name="outsider")
    outsider.sign_in("outsider")
    expect(outsider.page.get_by_role("heading", name=re.compile("no access yet"))).to_be_visible()
    outsider.shot("no-access")


def test_reveal_rate_limit_shows_its_message_in_the_cell(browse: Any, settings: Any) -> None:
    settings.PORTAL_REVEAL_RATE = "1/h"
    b = browse()
    b.allow_status(429)
    b.sign_in("engineer")
    b.goto(GRID)
    b.page.get_by_role("button", name="Reveal dev stripe secret_key").click()
    expect(b.page.locator("code.revealed")).to_have_count(1)
    b.page.get_by_role("button", name="Reveal main stripe secret_key").click()
    alert = b.page.get_by_role("alert")
    expect(alert).to_contain_text("Too many reveals: the limit is 1 per hour")
    expect(alert).to_be_focused()
    b.shot("rate-limited")
    assert aws.read_current("customer-portal-secrets").version_id  # moto still answers


def test_the_browser_enforces_the_csp_and_the_suite_notices(browse: Any) -> None:
    """Inline script and style are blocked by the policy as sent, and the watcher reports it (so
    the clean runs above mean something)."""
    b = browse()
    b.goto("/accounts/login/")
    b.page.evaluate(
        """() => {
          const s = document.createElement("script");
          s.textContent = "window.__inlineRan = true";
          document.body.append(s);
          document.body.insertAdjacentHTML("beforeend", '<p style="color: red">styled</p>');
        }"""
    )
    expect(b.page.get_by_text("styled")).to_be_visible()
    b.page.wait_for_timeout(200)  # violation events are dispatched asynchronously
    assert b.page.evaluate("window.__inlineRan") is None
    color = b.page.get_by_text("styled").evaluate("e => getComputedStyle(e).color")
    assert color != "rgb(255, 0, 0)"
    violations = [p for p in b.problems if p.startswith("CSP violation")]
    assert any("script-src" in p for p in violations), b.problems
    assert any("style-src" in p for p in violations), b.problems
    b.problems.clear()


# --------------------------------------------------------------------------------------------
# Writes, history, diff, audit (merged after the first browser suite)

EDIT = GRID + "edit/"
HISTORY = GRID + "history/"


def test_two_people_edit_the_same_cell_and_the_second_save_shows_the_conflict(
    browse: Any,
) -> None:
    """Editor -> review -> save in two browser contexts (engineer and approver): the first save
    wins, the second gets the conflict page with base / theirs / yours, re-applies and saves."""
    mine, theirs = browse(name="engineer"), browse(name="approver")
    for b, user, value in (
        (mine, "engineer", "sk_test_MINE"),
        (theirs, "approver", "sk_test_THEIRS"),
    ):
        b.sign_in(user)
        b.goto(GRID)
        b.page.get_by_role("link", name="Edit", exact=True).click()
        expect(b.page.get_by_role("heading", name=f"Edit {GRID.split('/')[2]}")).to_be_visible()
        type_value(b.page, "dev", "stripe", "secret_key", value)
        b.shot("editor-typed")
        assert submit(b.page, b.page.get_by_role("button", name="Review changes")) == 200
        expect(b.page.locator("table.review tbody tr")).to_have_count(1)
        expect(b.page.locator("table.review")).to_contain_text("secret_key")
        assert value not in b.page.locator("main").inner_text()
        b.shot("review")
    base = mine.page.locator("dl.facts dd code").first.inner_text()

    assert (
        submit(theirs.page, theirs.page.get_by_role("button", name="Save as one new version"))
        == 200
    )
    expect(theirs.page.get_by_text("Saved as version")).to_be_visible()
    theirs.shot("saved")

    mine.allow_status(409)
    assert submit(mine.page, mine.page.get_by_role("button", name="Save as one new version")) == 409
    page = mine.page
    expect(page.get_by_role("heading", name="Someone else changed what you edited")).to_be_visible()
    sides = dict(
        zip(
            page.locator("dl.facts dt").all_inner_texts(),
            page.locator("dl.facts dd").all_inner_texts(),
            strict=True,
        )
    )
    assert sides["Base (what you edited)"] == base
    current = aws.read_current("customer-portal-secrets").version_id
    assert sides["Theirs (current now)"] == current
    assert sides["Yours (staged, never current)"] not in (base, current)
    row = page.locator("table.conflict tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("secret_key")
    mine.shot("conflict")
    row.get_by_role("button", name="Reveal yours dev stripe secret_key").click()
    expect(row.locator("code.revealed")).to_have_text("sk_test_MINE")
    mine.shot("conflict-yours-revealed")
    assert AuditEvent.objects.filter(action="save", outcome="conflicted").count() == 1

    reapply = page.get_by_role("button", name="Re-apply my edits on the current version")
    assert submit(page, reapply) == 200
    assert submit(page, page.get_by_role("button", name="Save as one new version")) == 200
    expect(page.get_by_text("Saved as version")).to_be_visible()
    assert aws.read_current("customer-portal-secrets").version_id not in (base, current)
    assert AuditEvent.objects.filter(action="save", outcome="succeeded").count() == 2


def test_history_version_diff_restore_one_environment_and_create(browse: Any) -> None:
    b = browse()
    b.sign_in("engineer")
    b.goto(EDIT)
    for env in ("dev", "sandbox"):
        type_value(b.page, env, "stripe", "secret_key", f"sk_test_NEW{env}")
    assert submit(b.page, b.page.get_by_role("button", name="Review changes")) == 200
    assert submit(b.page, b.page.get_by_role("button", name="Save as one new version")) == 200
    b.page.get_by_role("link", name="History").click()
    rows = b.page.locator("table.history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("AWSCURRENT")
    expect(rows.first).to_contain_text("engineer")
    b.shot("history")

    assert diff_with_previous(b.page) == 200
    expect(b.page.locator("table.diff tbody tr")).to_have_count(2)
    b.shot("version-diff")
    b.page.get_by_role("link", name="history").click()

    restore = b.page.locator("form.restore").last
    # protected: offered, by change request
    expect(restore.locator("option[value=main]")).to_have_text("main (opens a change request)")
    restore.get_by_label("Environment to restore").select_option("dev")
    assert submit(b.page, restore.get_by_role("button", name="Restore to this version…")) == 200
    expect(b.page.locator("h1")).to_contain_text("Restore dev of customer-portal-secrets")
    expect(b.page.locator("table.review tbody tr")).to_have_count(1)  # sandbox is left alone
    b.shot("restore-review")
    assert submit(b.page, b.page.get_by_role("button", name="Save as one new version")) == 200
    expect(rows).to_have_count(3)
    b.shot("restored")
    doc = json.loads(aws.read_current("customer-portal-secrets").text or "")
    assert doc["dev"]["stripe"]["secret_key"] == "sk_test_FAKEcustdev"
    assert doc["sandbox"]["stripe"]["secret_key"] == "sk_test_NEWsandbox"

    admin = browse(name="admin")
    admin.sign_in("admin")
    admin.page.get_by_role("link", name=re.compile("Create")).first.click()
    admin.page.get_by_label("Repository name").fill("e2e-made")
    assert submit(admin.page, admin.page.get_by_role("button", name="Create secret")) == 200
    expect(admin.page.get_by_role("heading", name="e2e-made-secrets")).to_be_visible()
    expect(admin.page.get_by_text("Created e2e-made-secrets")).to_be_visible()
    admin.shot("created")
    assert aws.read_current("e2e-made-secrets").version_id


def test_new_read_only_pages_work_without_javascript(browse: Any, settings: Any) -> None:
    """Environment diff, history and version diff, compliance, integration, the audit log (filter,
    pages, chain check, CSV export): links and plain forms, no htmx."""
    settings.PORTAL_AUDIT_PAGE_SIZE = 1
    b = browse(javascript=False)
    page = b.page
    b.sign_in("engineer")
    b.goto(GRID)
    page.get_by_role("link", name="Compare environments").click()
    page.locator("select[name=a]").select_option("dev")
    page.locator("select[name=b]").select_option("uat")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"diff/\?a=dev&b=uat"))
    expect(page.locator("#comparison")).to_contain_text("uat")
    b.shot("environment-diff")

    page.get_by_role("link", name="customer-portal-secrets").click()
    page.get_by_role("link", name=re.compile("^Integration")).click()
    expect(page.locator("main")).to_contain_text("customer-portal-secrets")
    b.shot("integration")

    b.goto(HISTORY)
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    b.shot("history")
    b.goto(HISTORY + "diff/")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("h1")).to_have_text("Compare two versions")
    b.shot("version-diff")

    b.goto("/compliance/")
    page.get_by_role("link", name=re.compile("warning")).click()
    expect(page).to_have_url(re.compile(r"\?severity=warning$"))
    b.shot("compliance")

    page.get_by_role("button", name="Sign out").click()
    b.sign_in("auditor")
    b.goto("/audit/")
    page.get_by_label("Actor (username or e-mail)").fill("engineer")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"actor=engineer"))
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    b.shot("audit-log")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert rows and {r["actor_username"] for r in rows} == {"engineer"}, rows
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.locator("h1")).to_have_text("Audit chain check")
    expect(page.locator("main")).to_contain_text("The chain is intact")
    b.shot("audit-verify")


# --------------------------------------------------------------------------------------------
# Change requests and approvals (merged after the writes)


def test_an_edit_to_main_becomes_a_change_request_a_second_person_approves(browse: Any) -> None:
    """The engineer's edit of a protected environment opens a change request (nothing saved);
    the author cannot approve it; an approver, in a second browser context, opens it from the
    list, reveals the proposed value and approves: the grid shows the new fingerprint and the
    history names both people."""
    author, approver = browse(name="engineer"), browse(name="approver")
    author.sign_in("engineer")
    author.goto(GRID)
    before = grid_cell(author.page, "Reveal main stripe secret_key").locator("code.fp").inner_text()
    author.goto(EDIT)
    type_value(author.page, "main", "stripe", "secret_key", "sk_live_PROPOSED")
    assert submit(author.page, author.page.get_by_role("button", name="Review changes")) == 200
    expect(author.page.get_by_role("status")).to_contain_text("saving opens a change request")
    author.page.get_by_label("Comment for the approvers").fill("rotate the live key")
    author.shot("review-needs-approval")
    propose = author.page.get_by_role("button", name="Propose change request")
    assert submit(author.page, propose) == 200
    expect(author.page.get_by_text("Nothing is saved yet")).to_be_visible()
    expect(author.page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(author.page.get_by_text("someone else has to approve it")).to_be_visible()
    author.shot("request-seen-by-its-author")
    request_path = author.page.url.removeprefix(author.base_url)
    doc = json.loads(aws.read_current("customer-portal-secrets").text or "")
    assert doc["main"]["stripe"]["secret_key"] == "sk_live_FAKEcustprod"  # nothing current yet

    approver.sign_in("approver")
    approver.page.get_by_role("navigation").get_by_role("link", name="Change requests").click()
    rows = approver.page.locator("table.grid tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("engineer")
    approver.shot("change-request-list")
    rows.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    assert approver.page.url.endswith(request_path)
    cell = approver.page.locator("table.review tbody tr")
    expect(cell).to_have_count(1)
    proposed_fp = cell.locator("td").nth(5).locator("code.fp").inner_text()
    assert proposed_fp == documents.short(reads.fingerprint("sk_live_PROPOSED")) != before
    cell.get_by_label("Reason for revealing proposed main stripe secret_key").fill("review")
    cell.get_by_role("button", name="Reveal proposed main stripe secret_key").click()
    expect(cell.locator("code.revealed")).to_have_text("sk_live_PROPOSED")
    approver.shot("proposed-value-revealed")
    approver.page.get_by_label("Comment (optional)").fill("checked with the payments team")
    assert submit(approver.page, approver.page.get_by_role("button", name="Approve")) == 200
    expect(
        approver.page.get_by_text(re.compile(r"is applied: version \S+ is current"))
    ).to_be_visible()
    approver.shot("approved-and-applied")

    approver.goto(GRID)
    after = grid_cell(approver.page, "Reveal main stripe secret_key").locator("code.fp")
    expect(after).to_have_text(proposed_fp)
    approver.shot("grid-after-approval")
    approver.goto(HISTORY)
    newest = approver.page.locator("table.history tbody tr").first
    expect(newest).to_contain_text("AWSCURRENT")
    expect(newest).to_contain_text(re.compile(r"by engineer, approved by approver"))
    approver.shot("history-names-both")
    author.goto(request_path)
    expect(author.page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(author.page.locator("dl.facts")).to_contain_text("applied")
    assert (
        AuditEvent.objects.filter(action="change_request_apply", outcome="succeeded").count() == 1
    )
