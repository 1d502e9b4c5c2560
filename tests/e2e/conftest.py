"""Browser end-to-end fixtures: Debian's Chromium driven by Playwright against pytest-django's
``live_server``.

* ``browser``: one Chromium for the whole session (``/usr/bin/chromium``, or ``PORTAL_CHROMIUM``;
  never a downloaded browser: ``make system-deps`` installs Debian's).
* ``site``: the live server with the demo's users (password = username) and secrets seeded into
  this test's fresh moto state; values re-mask after ``REVEAL_SECONDS``.
* ``browse(...)``: a new browser context (JavaScript on or off) wrapped in
  :class:`~tests.e2e.browsing.Browsing`, which records every response, takes numbered
  screenshots under ``test-artifacts/screenshots/<test>/``, and fails the test on any console
  error, uncaught exception or Content-Security-Policy violation.

The live server runs in a thread of this process, so the test reads the same database (through
``transactional_db``), the same moto server and the same log handlers as the pages it drives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from secrets_admin import demo, index

from .browsing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CSP_LISTENER, REVEAL_SECONDS, Browsing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps` (Debian's chromium)")
    # While Playwright's sync API runs, an asyncio loop belongs to this thread, and Django's guard
    # against ORM calls from async code would trip on the tests' own synchronous database calls.
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as playwright:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Site:
    """The live portal: ``url`` of the server and the demo users' names."""

    url: str
    users: tuple[str, ...]


@pytest.fixture
def site(live_server: Any, settings: Any) -> Site:
    settings.PORTAL_REVEAL_SECONDS = REVEAL_SECONDS
    demo.create_users()
    demo.seed()
    index.scan()  # the hygiene pages' index, as `make run` fills it
    return Site(url=live_server.url, users=tuple(demo.DEMO_USERS))


@pytest.fixture
def browse(browser: Browser, site: Site, request: Any) -> Iterator[Callable[..., Browsing]]:
    """``browse(javascript=True, name="")`` -> a new :class:`Browsing`, closed and checked at the
    end of the test."""
    opened: list[Browsing] = []
    test_dir = re.sub(r"[^\w.-]+", "_", request.node.name)

    def open_(*, javascript: bool = True, name: str = "") -> Browsing:
        context = browser.new_context(
            java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
        )
        shots = ARTIFACTS / "screenshots" / test_dir / (name or ("js" if javascript else "nojs"))
        shots.mkdir(parents=True, exist_ok=True)
        for old in shots.glob("*.png"):
            old.unlink()
        watcher: list[Browsing] = []
        if javascript:
            context.expose_binding(
                "__portalCspViolation", lambda source, v: watcher[0]._csp(source, v)
            )
            context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        browsing = Browsing(context=context, page=page, base_url=site.url, shots=shots)
        watcher.append(browsing)
        page.on("console", browsing._console)
        page.on("pageerror", lambda exc: browsing.problems.append(f"uncaught: {exc}"))
        page.on("response", browsing._response)
        opened.append(browsing)
        return browsing

    yield open_
    for browsing in opened:
        browsing.context.close()
    for browsing in opened:
        browsing.check()
