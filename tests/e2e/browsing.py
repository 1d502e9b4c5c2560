"""A Playwright browser context watched for problems, and the responses it received (used by the
fixtures in ``conftest.py`` and by ``pages.py``/``flows.py``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Response
from playwright.sync_api import Error as PlaywrightError

from secrets_admin import demo
from secrets_admin.permissions import Role

if TYPE_CHECKING:
    from .pages import PortalPage

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REVEAL_SECONDS = 2
NO_ROLE_USERS = frozenset(u for u, role in demo.DEMO_USERS.items() if role is Role.NONE)

# Reports CSP violations from inside each page to the test (through a CDP binding, which the
# page's own CSP cannot block). Chromium also logs each violation as a console error.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__portalCspViolation({directive: e.violatedDirective, blocked: e.blockedURI,
                               source: e.sourceFile, line: e.lineNumber, sample: e.sample});
});
"""


@dataclass(frozen=True)
class Recorded:
    """One response the browser received, with its body (``b""`` for redirects)."""

    method: str
    url: str
    resource_type: str
    status: int
    headers: dict[str, str]
    body: bytes
    request_body: bytes

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]


@dataclass
class Browsing:
    """A browser context and its one page, watched for problems.

    ``problems`` collects console errors, uncaught exceptions and CSP violations; ``check()``
    (run at the end of every test) fails naming them. ``goto(path, status=...)`` accepts the
    console's "Failed to load resource" line for an expected error status.
    """

    context: BrowserContext
    page: Page
    base_url: str
    shots: Path
    problems: list[str] = field(default_factory=list)
    responses: list[Recorded] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    step: int = 0

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(p.search(message.text) for p in self.allowed):
            self.problems.append(f"console error on {self.page.url}: {message.text}")

    def _csp(self, source: Any, violation: dict[str, Any]) -> None:
        self.problems.append(f"CSP violation on {self.page.url}: {violation}")

    def _response(self, response: Response) -> None:
        try:
            body = response.body()
        except PlaywrightError:  # redirects have no body
            body = b""
        request = response.request
        self.responses.append(
            Recorded(
                method=request.method,
                url=response.url,
                resource_type=request.resource_type,
                status=response.status,
                headers=response.headers,
                body=body,
                request_body=request.post_data_buffer or b"",
            )
        )

    def goto(self, path: str, *, status: int = 200) -> Response:
        if status >= 400:
            self.allow_status(status)
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status == status, (path, response)
        return response

    def allow_status(self, status: int) -> None:
        """Accept the console errors Chromium and htmx log for an expected error status."""
        self.allowed.append(re.compile(rf"(status of|Response Status Error Code) {status}\b"))

    def shot(self, name: str) -> Path:
        """Save a numbered screenshot of the page as it is now."""
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def sign_in(self, username: str, password: str | None = None) -> None:
        """Sign in through the password form (demo and test mode only). A user without a role
        lands on the 403 "no access" page."""
        if username in NO_ROLE_USERS:
            self.allow_status(403)
        self.goto("/accounts/login/")
        self.page.fill("#id_login", username)
        self.page.fill("#id_password", password or username)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        self.page.wait_for_load_state()

    def visit(self, spec: PortalPage) -> None:
        """Open ``spec``'s page (signed in as whoever this context is) and run its action."""
        self.goto(spec.path, status=spec.status)
        if spec.then:
            if spec.then_status >= 400:
                self.allow_status(spec.then_status)
            status = spec.then(self.page)
            assert status == spec.then_status, (spec.label, status)

    def storage(self) -> dict[str, Any]:
        """localStorage, sessionStorage (as JSON text) and the cookies of this context."""
        out: dict[str, Any] = {"cookies": self.context.cookies()}
        if self.page.url.startswith("http"):
            for name in ("localStorage", "sessionStorage"):
                out[name] = self.page.evaluate(f"JSON.stringify(Object.entries({name}))")
        return out

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)
