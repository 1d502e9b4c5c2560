"""Every page (and page state) of the portal as a browser shows it, for the checks that must see
them all: axe-core (``test_a11y.py``) and the canary search (``test_canary.py``).

Add a row to :data:`PAGES` for each new screen or state (an edit form, a diff, a change request,
the audit log...). A row names the demo user who looks (``None``: signed out), the path, the
status expected, and optionally an action run after the page loads (``then``) to reach a state:
a revealed cell, a posted form. The demo data of ``tests/e2e/conftest.py::site`` is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from playwright.sync_api import Page, expect

GRID = "/secrets/customer-portal-secrets/"
REVEAL = GRID + "reveal/"


def post_form(page: Page, action: str, fields: dict[str, str], *, token: str | None = None) -> int:
    """Submit a plain (non-htmx) POST form built in the page, with the page's CSRF token unless
    ``token`` is given; waits for the page the server answers with and returns its status."""
    with page.expect_navigation() as navigation:
        page.evaluate(
            """([action, fields, token]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                const all = {...fields, csrfmiddlewaretoken:
                    token ?? JSON.parse(document.body.getAttribute("hx-headers"))["x-csrftoken"]};
                for (const [name, value] of Object.entries(all)) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.append(input);
                }
                document.body.append(form);
                form.submit();
            }""",
            [action, fields, token],
        )
    response = navigation.value
    assert response is not None
    return response.status


def _reveal_fields(page: Page, environment: str, service: str, key: str) -> dict[str, str]:
    version = page.locator("dl.facts dd code").first.inner_text()
    return {"version_id": version, "environment": environment, "service": service, "key": key}


def reveal_in_cell(page: Page) -> int:
    """htmx reveal of one cell: the grid with a value shown."""
    with page.expect_response(lambda r: r.url.endswith(REVEAL)) as response:
        page.get_by_role("button", name="Reveal dev stripe secret_key").click()
    expect(page.locator("code.revealed")).to_have_count(1)
    return response.value.status


def reveal_as_page(page: Page) -> int:
    """The reveal without JavaScript: a small page with the value."""
    return post_form(page, REVEAL, _reveal_fields(page, "main", "stripe", "secret_key"))


def incomplete_reveal(page: Page) -> int:
    return post_form(page, REVEAL, {"environment": "dev"})


def oversized_post(page: Page) -> int:
    return post_form(page, REVEAL, {"filler": "x" * 1_100_000})


def stale_form(page: Page) -> int:
    return post_form(
        page, REVEAL, _reveal_fields(page, "dev", "stripe", "secret_key"), token="x" * 32
    )


def reveal_without_the_role(page: Page) -> int:
    return post_form(page, REVEAL, _reveal_fields(page, "dev", "stripe", "secret_key"))


@dataclass(frozen=True)
class PortalPage:
    """One page a person can see: who (demo user or ``None``), where, what status, and an
    action that brings it to the state to check (its resulting status in ``then_status``)."""

    label: str
    user: str | None
    path: str
    status: int = 200
    then: Callable[[Page], int] | None = None
    then_status: int = 200

    @property
    def final_status(self) -> int:
        return self.then_status if self.then else self.status


PAGES: list[PortalPage] = [
    PortalPage("sign-in", None, "/accounts/login/"),
    PortalPage("list", "engineer", "/"),
    PortalPage("list-search-no-match", "engineer", "/?q=zzz-nothing"),
    PortalPage("grid", "engineer", GRID),
    PortalPage("grid-revealed-cell", "engineer", GRID, then=reveal_in_cell),
    PortalPage("reveal-page-no-js", "engineer", GRID, then=reveal_as_page),
    PortalPage("reveal-incomplete", "engineer", GRID, then=incomplete_reveal, then_status=400),
    PortalPage("bad-request-oversized", "engineer", GRID, then=oversized_post, then_status=400),
    PortalPage("csrf-failure", "engineer", GRID, then=stale_form, then_status=403),
    PortalPage("grid-auditor", "auditor", GRID),
    PortalPage("reveal-forbidden", "auditor", GRID, then=reveal_without_the_role, then_status=403),
    PortalPage("grid-non-standard", "auditor", "/secrets/inventory-api-secrets/"),
    PortalPage("grid-not-json", "auditor", "/secrets/billing-service-secrets/"),
    PortalPage("grid-no-value", "auditor", "/secrets/new-repo-secrets/"),
    PortalPage("secret-missing", "auditor", "/secrets/nope-secrets/", status=404),
    PortalPage("not-found", "auditor", "/no-such-page/", status=404),
    PortalPage("no-access", "outsider", "/", status=403),
]
