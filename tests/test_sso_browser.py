"""Single sign-on once in a real browser: headless Chromium (Debian's) -> live portal -> IdP.

The browser enforces what the test client does not: the Content-Security-Policy (the sign-in
form's redirect to the IdP needs the IdP's origin in ``form-action``), cookies with SameSite,
and real redirects across two origins.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from secrets_admin.models import AuditEvent

from .e2e.browsing import ARTIFACTS

SHOTS = ARTIFACTS / "screenshots" / "sso"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def sign_in_and_out(portal: str, issuer: str) -> dict[str, Any]:
    """Drive Chromium through sign-in and sign-out; return what the assertions need.

    Runs in its own thread: Playwright's sync API keeps an event loop on its thread, where
    Django refuses database calls.
    """
    seen: dict[str, Any] = {"csp_violations": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on(
            "console",
            lambda m: (
                seen["csp_violations"].append(m.text)
                if "Content Security Policy" in m.text
                else None
            ),
        )
        page.goto(portal + "/")
        seen["first_url"] = page.url
        page.get_by_role("button", name="Sign in with Corp SSO").click()

        page.wait_for_url(issuer + "/interaction/**")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / "01-identity-provider.png", full_page=True)
        page.fill("input[name=login]", "erin")
        page.fill("input[name=password]", "any")
        page.locator("button[type=submit]").first.click()
        page.wait_for_url(issuer + "/interaction/**")  # consent
        page.locator("button[type=submit]").first.click()

        page.wait_for_url(portal + "/")
        page.screenshot(path=SHOTS / "02-signed-in.png", full_page=True)
        seen["who"] = page.locator(".who").inner_text()
        seen["cookie"] = next(c for c in page.context.cookies() if c["name"] == "sessionid")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/accounts/login/")
        seen["cookies_after"] = [c["name"] for c in page.context.cookies(portal)]
        browser.close()
    return seen


@pytest.mark.django_db(transaction=True)
def test_engineer_signs_in_through_the_identity_provider_in_a_browser(
    sso: Any, live_server: Any
) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(sign_in_and_out, live_server.url, sso.issuer).result(timeout=120)

    assert "/accounts/login/" in seen["first_url"]
    assert seen["who"].endswith("engineer")
    assert seen["csp_violations"] == []
    assert seen["cookie"]["httpOnly"] and seen["cookie"]["sameSite"] == "Lax"
    assert "sessionid" not in seen["cookies_after"]
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert actions == ["sign_in", "sign_out"]
