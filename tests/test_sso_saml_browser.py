"""SAML sign-in once in Chromium: live portal -> the loopback SAML IdP's login page -> the IdP's
auto-posted Response back to the portal (a cross-site POST, so allauth's SameSite-safe ACS
hand-off and the portal's CSP ``form-action`` are exercised as in production)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.contrib.sessions.models import Session
from django.urls import reverse
from playwright.sync_api import sync_playwright

from secrets_admin.permissions import Role, role_for

from .saml_idp import SamlIdentityProvider
from .test_sso_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS
from .test_sso_saml_idp import PROVIDER, configure, register_portal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(portal: str, idp: str, username: str, shot: str) -> dict[str, Any]:
    """Chromium through the whole flow (in its own thread: Playwright's loop refuses the ORM)."""
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.goto(portal + "/accounts/login/")
        page.get_by_role("button", name="Sign in with Entra ID").click()
        page.wait_for_url(idp + "/sso/redirect**")
        page.fill("#username", username)
        page.fill("#password", "any")
        page.click("#sign-in")
        page.wait_for_url(portal + "/**")
        page.wait_for_load_state("networkidle")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"saml-{shot}.png", full_page=True)
        seen: dict[str, Any] = {"url": page.url}
        seen["csp_violations"] = [m for m in console if "Content Security Policy" in m]
        seen["heading"] = page.locator("h1").first.inner_text()
        seen["cookies"] = {c["name"]: c["value"] for c in page.context.cookies(portal)}
        browser.close()
    return seen


@pytest.fixture
def portal(saml_idp: SamlIdentityProvider, settings: Any, live_server: Any) -> str:
    configure(settings, saml_idp)
    path = reverse("saml_metadata", args=[PROVIDER])
    metadata = requests.get(live_server.url + path, timeout=30)
    metadata.raise_for_status()
    register_portal(saml_idp, metadata.text, live_server.url + reverse("saml_acs", args=[PROVIDER]))
    return str(live_server.url)


def run(portal: str, idp: SamlIdentityProvider, username: str, shot: str) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(sign_in, portal, idp.base_url, username, shot).result(timeout=120)


def test_engineer_signs_in_with_saml_in_a_browser(
    portal: str, saml_idp: SamlIdentityProvider, django_user_model: Any
) -> None:
    seen = run(portal, saml_idp, "erin", "signed-in")

    assert seen["url"] == portal + reverse("secrets_admin:secret_list")
    assert seen["csp_violations"] == []
    assert "sessionid" in seen["cookies"]
    assert role_for(django_user_model.objects.get(email="erin@example.test")) is Role.ENGINEER


def test_a_wrongly_signed_response_shows_a_clear_page_in_a_browser(
    portal: str, saml_idp: SamlIdentityProvider
) -> None:
    saml_idp.mode = "wrong_signature"
    seen = run(portal, saml_idp, "erin", "wrong-signature")

    assert seen["heading"] == "Sign-in failed"
    # The browser may hold an anonymous session (the sign-in's state); nobody is signed in on it.
    key = seen["cookies"].get("sessionid")
    session = Session.objects.filter(session_key=key).first() if key else None
    assert session is None or "_auth_user_id" not in session.get_decoded()
