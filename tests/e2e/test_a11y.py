"""Accessibility (WCAG 2.2 AA): axe-core finds no serious or critical violation on any page;
the main controls are reached with the Tab key; masked values are announced as hidden.

axe-core comes from npm (``tests/a11y/package.json``, installed by ``make node-deps``). It is run
with ``page.evaluate``, which Chromium executes through the DevTools protocol: the page's CSP
(no inline script) does not apply to it, so the policy under test stays exactly as served.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .browsing import ARTIFACTS, ROOT, Browsing
from .pages import GRID, PAGES

AXE_JS = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

_RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
  }));
}"""


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.x A/AA and best practices)."""
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run `make node-deps`")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text())
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE)
    return violations


#: Pages also photographed in the dark scheme (every page is checked by axe in both schemes).
DARK_SHOTS = ("grid", "history", "audit-log", "list")


def test_axe_finds_no_serious_or_critical_violation_on_any_page(browse: Any) -> None:
    """Every page in the light and the dark colour scheme (``prefers-color-scheme``): the dark
    check switches the scheme on the page as it is (``emulate_media``), so no state is replayed;
    the report records how long each scheme's axe runs took."""
    signed_in: dict[str | None, Browsing] = {}
    report: dict[str, Any] = {}
    axe_seconds = {"light": 0.0, "dark": 0.0}
    for spec in PAGES:
        if spec.user not in signed_in:
            signed_in[spec.user] = browse(name=spec.user or "anonymous")
            if spec.user:
                signed_in[spec.user].sign_in(spec.user)
        b = signed_in[spec.user]
        b.page.emulate_media(color_scheme="light")
        b.visit(spec)
        b.shot(spec.label)
        for scheme in ("light", "dark"):
            b.page.emulate_media(color_scheme=scheme)
            if scheme == "dark" and spec.label in DARK_SHOTS:
                b.shot(f"{spec.label}-dark")
            started = time.perf_counter()
            violations = run_axe(b.page)
            axe_seconds[scheme] += time.perf_counter() - started
            report[f"{spec.label} ({scheme})"] = {
                "url": b.page.url,
                "counts": dict(Counter(v["impact"] for v in violations)),
                "violations": violations,
            }
    report["axe seconds"] = {k: round(v, 1) for k, v in axe_seconds.items()}
    (ARTIFACTS / "axe-report.json").write_text(json.dumps(report, indent=2))
    blocking = {
        label: [f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in r["violations"]]
        for label, r in report.items()
        if label != "axe seconds" and any(v["impact"] in BLOCKING for v in r["violations"])
    }
    assert not blocking, json.dumps(blocking, indent=2)
    assert len(report) == 2 * len(PAGES) + 1


def test_dark_scheme_follows_the_browser_preference(browse: Any) -> None:
    """The stylesheet switches on ``prefers-color-scheme``: page, header and form fields change
    colour, and the header bar spans a grid wider than the window."""
    b = browse()
    b.sign_in("engineer")
    b.page.set_viewport_size({"width": 900, "height": 700})
    b.goto(GRID)
    colours = """() => [document.body, document.querySelector("header.top"),
        document.querySelector("button.reveal")].map(e => getComputedStyle(e).backgroundColor)"""
    b.page.emulate_media(color_scheme="light")
    light = b.page.evaluate(colours)
    b.page.emulate_media(color_scheme="dark")
    dark = b.page.evaluate(colours)
    assert light[0] == "rgb(255, 255, 255)" and dark[0] == "rgb(13, 17, 23)"
    assert light[1] != dark[1]
    widths = b.page.evaluate(
        """() => [document.documentElement.scrollWidth,
            document.querySelector("header.top").getBoundingClientRect().width,
            document.querySelector(".grid-scroll").scrollWidth]"""
    )
    assert widths[2] > 900  # the grid is wider than the window: it scrolls in its own box
    assert widths[1] >= widths[0] - 1  # and the header bar spans the page (to the pixel)


def _tab_stops(page: Page, limit: int = 200) -> list[str]:
    """Press Tab from the top of the page; return each focused element's description."""
    page.locator("body").focus()
    page.evaluate("document.activeElement.blur()")
    stops: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = page.evaluate(
            """() => { const e = document.activeElement;
              if (!e || e === document.body) return "";
              return e.tagName.toLowerCase() + "|" + (e.id || "") + "|" +
                (e.getAttribute("aria-label") || e.textContent.trim().slice(0, 40)); }"""
        )
        if not stop or (stops and stop == stops[0]):
            break
        stops.append(stop)
    return stops


def test_keyboard_reaches_search_links_reveal_and_sign_out(browse: Any) -> None:
    b = browse()
    b.sign_in("engineer")
    stops = _tab_stops(b.page)
    assert stops[0] == "a||Skip to content"
    assert "input|q|" in stops
    assert "button||Search" in stops and "button||Refresh from AWS" in stops
    assert "a||customer-portal-secrets" in stops
    assert "button||Sign out" in stops

    b.goto(GRID)
    stops = _tab_stops(b.page)
    reveal = "button||Reveal dev stripe secret_key"
    assert reveal in stops
    assert stops.index("a||Secrets") < stops.index(reveal)  # document order: nav, then grid
    reveal_buttons = [s for s in stops if s.startswith("button||Reveal ")]
    assert len(reveal_buttons) == b.page.locator("table.grid button.reveal").count()

    # Operate it with the keyboard alone: focus moves to the value, which stays reachable.
    b.page.get_by_role("button", name="Reveal dev stripe secret_key").focus()
    b.page.keyboard.press("Enter")
    revealed = b.page.locator("code.revealed")
    expect(revealed).to_be_focused()
    b.shot("revealed-by-keyboard")


def test_masked_values_are_announced_as_hidden(browse: Any) -> None:
    b = browse()
    b.sign_in("engineer")
    b.goto(GRID)
    cell = b.page.locator("td").filter(has=b.page.locator(".mask")).first
    tree = cell.aria_snapshot()
    assert "value hidden" in tree
    assert "•" not in tree  # the dots are aria-hidden decoration
    assert b.page.get_by_text("value hidden").count() == b.page.locator(".mask").count()
    b.page.get_by_role("button", name="Reveal dev stripe secret_key").click()
    expect(b.page.locator("code.revealed")).to_have_count(1)
    expect(b.page.locator("code.revealed")).to_have_count(0, timeout=6000)
    again = b.page.get_by_role("button", name="Reveal dev stripe secret_key")
    expect(again).to_be_focused()  # focus stays where the value was: on its Reveal button
    tree = again.locator("xpath=..").aria_snapshot()
    assert "value hidden" in tree and "•" not in tree


def test_axe_reports_planted_violations(browse: Any) -> None:
    """The check above can fail: an unnamed button and an image without ``alt`` are reported."""
    b = browse()
    b.goto("/accounts/login/")
    b.page.evaluate(
        """() => { const m = document.querySelector("main");
          m.insertAdjacentHTML("beforeend",
            '<button></button>' +
            '<img src="/static/portal/favicon.svg">'); }"""
    )
    found = {v["id"]: v["impact"] for v in run_axe(b.page)}
    assert found.get("button-name") in BLOCKING
    assert found.get("image-alt") in BLOCKING
