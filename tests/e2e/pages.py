"""Every page (and page state) of the portal as a browser shows it, for the checks that must see
them all: axe-core (``test_a11y.py``) and the canary search (``test_canary.py``).

Add a row to :data:`PAGES` for each new screen or state (an edit form, a diff, a change request,
the audit log...). A row names the demo user who looks (``None``: signed out), the path, the
status expected, and optionally an action run after the page loads (``then``) to reach a state:
a revealed cell, a posted form. The demo data of ``tests/e2e/conftest.py::site`` is there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

GRID = "/secrets/customer-portal-secrets/"
REVEAL = GRID + "reveal/"
EDIT = GRID + "edit/"
HISTORY = GRID + "history/"
CHANGES = "/changes/"


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
    """The reveal without JavaScript: a small page with the value (main asks for a reason)."""
    fields = _reveal_fields(page, "main", "stripe", "secret_key")
    return post_form(page, REVEAL, {**fields, "reason": "checking the live key"})


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


def submit(page: Page, button: Locator) -> int:
    """Click a button (or link) that loads a new page; return the final response's status."""
    with page.expect_navigation() as navigation:
        button.click()
    response = navigation.value
    assert response is not None
    return response.status


def type_value(page: Page, environment: str, service: str, key: str, value: str) -> None:
    page.get_by_label(f"New value for {environment} {service} {key}", exact=True).fill(value)


def review_edit(page: Page, value: str = "sk_test_TYPEDreview") -> int:
    """In the editor: type a new value for one cell and press Review (the review page)."""
    type_value(page, "dev", "stripe", "secret_key", value)
    return submit(page, page.get_by_role("button", name="Review changes"))


def save_edit(page: Page, value: str = "sk_test_TYPEDsaved") -> int:
    """Editor -> review -> save: back on the grid with the "Saved as version" message."""
    assert review_edit(page, value) == 200
    status = submit(page, page.get_by_role("button", name="Save as one new version"))
    expect(page.get_by_text("Saved as version")).to_be_visible()
    return status


def save_conflicting_edit(page: Page) -> int:
    """Review an edit; meanwhile a second tab saves the same cell; then save: the conflict page
    (base / theirs / yours). ``test_flows.py`` does the same with two people."""
    assert review_edit(page, "sk_test_TYPEDmine") == 200
    other = page.context.new_page()
    try:
        other.goto(page.url.split("/secrets/", 1)[0] + EDIT)
        save_edit(other, "sk_test_TYPEDtheirs")
    finally:
        other.close()
    status = submit(page, page.get_by_role("button", name="Save as one new version"))
    expect(page.get_by_role("heading", name="Someone else changed what you edited")).to_be_visible()
    return status


def back_to_editor(page: Page) -> int:
    assert review_edit(page) == 200
    return submit(page, page.get_by_role("button", name="Back to the editor"))


def add_key_row(page: Page) -> int:
    """htmx: one more blank new-key row in the editor, no reload."""
    rows = page.locator("#new-keys tr")
    before = rows.count()
    with page.expect_response(lambda r: "/edit/row/" in r.url) as response:
        page.get_by_role("link", name="Add a key row").click()
    expect(rows).to_have_count(before + 1)
    return response.value.status


def diff_with_previous(page: Page) -> int:
    return submit(page, page.get_by_role("link", name="diff with the one before").first)


def _restore_oldest(page: Page, environment: str) -> int:
    form = page.locator("form.restore").last
    form.get_by_label("Environment to restore").select_option(environment)
    return submit(page, form.get_by_role("button", name="Restore to this version…"))


def review_restore(page: Page) -> int:
    """History: restore dev to the oldest version -> the review of that changeset."""
    return _restore_oldest(page, "dev")


def save_restore(page: Page) -> int:
    assert _restore_oldest(page, "dev") == 200
    status = submit(page, page.get_by_role("button", name="Save as one new version"))
    expect(page.get_by_text("Saved as version")).to_be_visible()
    return status


def create_invalid(page: Page) -> int:
    """A name the browser lets through and the server refuses: the form again with its errors."""
    page.get_by_label("Repository name").fill("bad name!")
    return submit(page, page.get_by_role("button", name="Create secret"))


def create_secret(page: Page) -> int:
    page.get_by_label("Repository name").fill("e2e-created")
    return submit(page, page.get_by_role("button", name="Create secret"))


def verify_chain(page: Page) -> int:
    """htmx: the chain check's result replaces its placeholder on the log."""
    with page.expect_response(lambda r: r.url.endswith("/audit/verify/")) as response:
        page.get_by_role("button", name="Verify the chain").click()
    expect(page.locator("#audit-verify")).not_to_be_empty()
    return response.value.status


def verify_chain_as_page(page: Page) -> int:
    return post_form(page, "/audit/verify/", {})


def filter_audit_log(page: Page) -> int:
    """The filter form submitted as a plain GET (htmx replaces only the table)."""
    with page.expect_response(lambda r: "/audit/?" in r.url) as response:
        page.get_by_role("button", name="Filter").click()
    return response.value.status


def compare_other_environments(page: Page) -> int:
    """htmx: changing a select re-renders only the comparison and pushes the URL."""
    with page.expect_response(lambda r: "/diff/?" in r.url) as response:
        page.locator("select[name=b]").select_option("uat")
    expect(page.locator("#comparison")).to_contain_text("uat")
    return response.value.status


def propose_main_edit(page: Page, value: str = "sk_live_TYPEDproposed") -> int:
    """Editor -> review -> propose: an edit of ``main`` (protected) opens a change request; the
    author lands on its page (open, no Approve button for them)."""
    type_value(page, "main", "stripe", "secret_key", value)
    assert submit(page, page.get_by_role("button", name="Review changes")) == 200
    status = submit(page, page.get_by_role("button", name="Propose change request"))
    expect(page.get_by_text("Nothing is saved yet")).to_be_visible()
    return status


def propose_another_main_edit(page: Page) -> int:
    return propose_main_edit(page, "sk_live_TYPEDproposed2")


def open_newest_request(page: Page) -> int:
    """From the change-request list: the newest request's page."""
    return submit(page, page.locator("table.grid tbody tr").first.get_by_role("link").first)


def reveal_proposed(page: Page) -> int:
    """htmx reveal of the proposed side of the newest request's first cell."""
    assert open_newest_request(page) == 200
    reason = page.get_by_label(re.compile(r"^Reason for revealing proposed "))
    if reason.count():  # a protected environment asks why
        reason.first.fill("reviewing the request")
    with page.expect_response(lambda r: r.url.endswith(REVEAL)) as response:
        page.get_by_role("button", name=re.compile(r"^Reveal proposed ")).first.click()
    expect(page.locator("code.revealed")).to_have_count(1)
    return response.value.status


def approve_newest_request(page: Page) -> int:
    """Approve the newest open request: applied, its page says so."""
    assert open_newest_request(page) == 200
    status = submit(page, page.get_by_role("button", name="Approve"))
    expect(page.get_by_text(re.compile(r"is applied"))).to_be_visible()
    return status


def reject_newest_request(page: Page) -> int:
    assert open_newest_request(page) == 200
    page.get_by_label("Why reject it (required)").fill("not during the freeze")
    status = submit(page, page.get_by_role("button", name="Reject"))
    expect(page.get_by_text(re.compile(r"is rejected"))).to_be_visible()
    return status


def preview_paste(page: Page) -> int:
    """The bulk-paste form filled for dev, and its per-cell preview."""
    page.get_by_label("Environment").select_option("dev")
    page.get_by_label("Text").fill("STRIPE_SECRET_KEY=sk_test_PASTED\nSENTRY_DSN=https://dsn\n")
    return submit(page, page.get_by_role("button", name="Preview the paste"))


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
    #: False: the canary run's ``every_page`` skips this row, because a flow of ``flows.py``
    #: takes the same steps on the canary secrets (a write here would only repeat it on demo data).
    canary: bool = True

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
    # Writes: the editor, its review, a save, a conflict (order matters: later rows see the
    # versions these saves create).
    PortalPage("editor", "engineer", EDIT),
    PortalPage("editor-more-rows", "engineer", EDIT + "?rows=4"),
    PortalPage("editor-add-row", "engineer", EDIT, then=add_key_row),
    PortalPage("editor-review", "engineer", EDIT, then=review_edit, canary=False),
    PortalPage("editor-back-from-review", "engineer", EDIT, then=back_to_editor, canary=False),
    PortalPage("editor-saved", "engineer", EDIT, then=save_edit, canary=False),
    PortalPage(
        "editor-conflict",
        "engineer",
        EDIT,
        then=save_conflicting_edit,
        then_status=409,
        canary=False,
    ),
    PortalPage("editor-not-json", "engineer", "/secrets/billing-service-secrets/edit/"),
    PortalPage("bulk-paste", "engineer", GRID + "paste/"),
    PortalPage("bulk-paste-preview", "engineer", GRID + "paste/", then=preview_paste, canary=False),
    PortalPage("migrate", "admin", "/migrate/"),
    PortalPage("editor-empty-secret-first-version", "engineer", "/secrets/new-repo-secrets/edit/"),
    PortalPage("history", "engineer", HISTORY),
    PortalPage("version-diff", "engineer", HISTORY, then=diff_with_previous, canary=False),
    PortalPage("restore-review", "engineer", HISTORY, then=review_restore, canary=False),
    PortalPage("restore-saved", "engineer", HISTORY, then=save_restore, canary=False),
    PortalPage("history-auditor", "auditor", HISTORY),
    PortalPage("create-secret", "admin", "/create/"),
    PortalPage(
        "create-secret-invalid",
        "admin",
        "/create/",
        then=create_invalid,
        then_status=400,
        canary=False,
    ),
    PortalPage("create-secret-done", "admin", "/create/", then=create_secret, canary=False),
    # Read-only pages.
    PortalPage("environment-diff", "engineer", GRID + "diff/?a=dev&b=main"),
    PortalPage(
        "environment-diff-switch", "engineer", GRID + "diff/", then=compare_other_environments
    ),
    PortalPage("environment-diff-non-standard", "engineer", "/secrets/inventory-api-secrets/diff/"),
    PortalPage("integration", "engineer", GRID + "integration/"),
    PortalPage("compliance", "auditor", "/compliance/"),
    PortalPage("compliance-errors", "auditor", "/compliance/?severity=error"),
    # Credential hygiene, from the index the site's scan filled.
    PortalPage("service-matrix", "auditor", "/hygiene/services/?environment=main"),
    PortalPage("credential-reuse", "auditor", "/hygiene/reuse/"),
    PortalPage("credential-staleness", "auditor", "/hygiene/stale/"),
    PortalPage("standard-adoption", "auditor", "/hygiene/adoption/?sort=-passed"),
    PortalPage("audit-log", "auditor", "/audit/"),
    PortalPage("audit-log-filtered", "auditor", "/audit/?action=reveal", then=filter_audit_log),
    PortalPage("audit-verify", "auditor", "/audit/", then=verify_chain),
    PortalPage("audit-verify-page", "auditor", "/audit/", then=verify_chain_as_page),
    PortalPage("audit-event", "auditor", "/audit/events/1/"),
    PortalPage("audit-secret-timeline", "auditor", "/audit/secrets/customer-portal-secrets/"),
    PortalPage("audit-user-timeline", "auditor", "/audit/users/engineer/"),
    # Change requests and approvals: one proposed and approved, one proposed and rejected.
    PortalPage("change-request-list-empty", "approver", CHANGES),
    PortalPage("change-request-proposed", "engineer", EDIT, then=propose_main_edit, canary=False),
    PortalPage("change-request-list", "approver", CHANGES),
    PortalPage("change-request-open", "approver", CHANGES, then=open_newest_request, canary=False),
    PortalPage(
        "change-request-open-revealed", "approver", CHANGES, then=reveal_proposed, canary=False
    ),
    PortalPage(
        "change-request-open-author", "engineer", CHANGES, then=open_newest_request, canary=False
    ),
    PortalPage(
        "change-request-applied", "approver", CHANGES, then=approve_newest_request, canary=False
    ),
    PortalPage("change-request-list-all", "engineer", CHANGES + "?show=all"),
    PortalPage(
        "change-request-proposed-again",
        "engineer",
        EDIT,
        then=propose_another_main_edit,
        canary=False,
    ),
    PortalPage(
        "change-request-rejected", "approver", CHANGES, then=reject_newest_request, canary=False
    ),
    PortalPage("change-request-list-mine", "engineer", CHANGES + "?show=mine"),
    PortalPage("change-request-missing", "approver", CHANGES + "999999/", status=404),
]
