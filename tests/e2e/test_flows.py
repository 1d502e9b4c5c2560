"""The portal in a real browser (issue 8, part 4): sign in, search, open a grid, reveal and
re-mask, sign out; the same read-only pages with JavaScript off; htmx under the strict CSP."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from secrets_admin import aws
from secrets_admin.models import AuditEvent

from .browsing import REVEAL_SECONDS

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
    expect(cell).to_contain_text("value hidden again")
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
