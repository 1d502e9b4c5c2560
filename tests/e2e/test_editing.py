"""The editor, the migration wizard and the grid's comforts in a real browser: typed values keep
their JSON type, the migration posts from Chromium, empty values and protected environments are
explicit, destructive actions confirm, bulk paste into one environment, reveal with copy / hide."""

from __future__ import annotations

import re
import shutil
from typing import Any

from django.urls import reverse
from playwright.sync_api import expect

from secrets_admin import aws, demo, documents

from .browsing import ARTIFACTS, Browsing
from .pages import save_edit, submit, type_value
from .test_flows import grid_cell

GRID = "/secrets/customer-portal-secrets/"
EDIT = GRID + "edit/"


def engineer_in_the_editor(browse: Any) -> Browsing:
    """A new browser, signed in as the engineer, on the demo secret's editor."""
    b: Browsing = browse()
    b.sign_in("engineer")
    b.goto(EDIT)
    return b


def test_screens_of_the_grid_the_editor_and_the_audit_log(browse: Any) -> None:
    """Screenshots kept as test artifacts (``test-artifacts/screens/``) at a 1366 px screen."""
    b = browse()
    b.page.set_viewport_size({"width": 1366, "height": 768})
    b.sign_in("engineer")
    out = ARTIFACTS / "screens"
    out.mkdir(parents=True, exist_ok=True)
    b.goto(EDIT)
    save_edit(b.page)  # something for the audit log to show
    for name, path, heading in (
        ("grid", GRID, "customer-portal-secrets"),
        ("editor", EDIT, "Edit customer-portal-secrets"),
    ):
        b.goto(path)
        expect(b.page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        shutil.copy(b.shot(name), out / f"{name}.png")
    auditor = browse(name="auditor")
    auditor.page.set_viewport_size({"width": 1366, "height": 768})
    auditor.sign_in("auditor")
    auditor.goto("/audit/")
    expect(auditor.page.get_by_role("heading", level=1)).to_be_visible()
    shutil.copy(auditor.shot("audit-log"), out / "audit-log.png")


def test_legacy_migration_from_chromium_previews_and_applies_the_chosen_mapping(
    browse: Any,
) -> None:
    """Chromium posts the wizard as multipart: every field arrives intact (no JSON in names)."""
    b = browse()
    page = b.page
    b.sign_in("admin")
    b.goto(reverse("secrets_admin:secret_migrate"))
    legacy = "transportation-insights-databricks-sandbox"
    page.get_by_label(f"migrate {legacy}").check()
    page.get_by_label(f"environment for {legacy}").fill("sandbox")
    page.get_by_label(f"service for {legacy}").fill("legacy_databricks")
    page.get_by_label("Repository").fill("transportation-insights")
    assert submit(page, page.get_by_role("button", name="Preview the migration")) == 200
    expect(page.locator("table.review tbody tr")).to_have_count(2)
    expect(page.locator("table.review")).to_contain_text("legacy_databricks")
    expect(page.get_by_text("Nothing to write")).to_have_count(0)
    b.shot("migration-preview")
    assert submit(page, page.get_by_role("button", name=re.compile(r"^Save 2 cells"))) == 200
    expect(page.get_by_text("2 cells migrated")).to_be_visible()
    document = documents.parse(aws.read_current("transportation-insights-secrets").text or "")
    assert list(document["sandbox"]["legacy_databricks"]) == ["client_id", "client_secret"]


def test_a_boolean_edited_in_chromium_stays_a_boolean_and_a_bad_number_is_stopped(
    browse: Any,
) -> None:
    b = engineer_in_the_editor(browse)
    page = b.page
    beta_type = page.get_by_label("Type of the value for dev feature_flags beta", exact=True)
    expect(beta_type).to_have_value("boolean")
    type_value(page, "dev", "feature_flags", "beta", "false")
    retries = page.get_by_label("New value for dev feature_flags max_retries", exact=True)
    retries.fill("three")
    assert retries.evaluate("el => el.validationMessage").startswith("Not a number")
    page.get_by_role("button", name="Review changes").click()
    expect(page).to_have_url(re.compile(r"/edit/$"))  # the browser refused to send it
    retries.fill("5")
    page.get_by_label("Type of the value for dev feature_flags max_retries").select_option("string")
    assert submit(page, page.get_by_role("button", name="Review changes")) == 200
    expect(page.locator("table.review")).to_contain_text("type: number → string")
    b.shot("typed-review")
    submit(page, page.get_by_role("button", name="Save as one new version"))
    expect(page.get_by_text("Saved as version")).to_be_visible()
    document = documents.parse(aws.read_current("customer-portal-secrets").text or "")
    assert document["dev"]["feature_flags"]["beta"] is False
    assert document["dev"]["feature_flags"]["max_retries"] == "5"


def test_destructive_actions_look_destructive_confirm_by_name_and_leaving_edits_warns(
    browse: Any,
) -> None:
    request_id = demo.seed_change_request()
    b = browse()
    page = b.page
    b.sign_in("approver")
    b.goto(reverse("secrets_admin:change_request_detail", args=[request_id]))
    reject = page.get_by_role("button", name="Reject")
    assert reject.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(180, 35, 24)"

    b.goto(EDIT)
    confirm = page.get_by_label(re.compile("type the secret's name"))
    expect(confirm).to_be_hidden()  # no removal chosen yet
    page.get_by_role("checkbox", name="remove environment").last.check()  # uat
    expect(confirm).to_be_visible()
    page.get_by_role("button", name="Review changes").click()
    assert confirm.evaluate("el => el.validity.valueMissing")  # the browser asks for the name
    b.shot("confirm-removal")

    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Edit customer-portal-secrets")).to_be_visible()
    assert dialogs == ["beforeunload"]  # asked, and staying kept the edits
    assert page.get_by_role("checkbox", name="remove environment").last.is_checked()

    confirm.fill("customer-portal-secrets")
    assert submit(page, page.get_by_role("button", name="Review changes")) == 200
    expect(page.get_by_text("environment uat")).to_be_visible()
    assert dialogs == ["beforeunload"]  # submitting the form does not ask


def test_bulk_paste_of_an_env_file_into_dev_previews_each_cell_then_saves_through_the_review(
    browse: Any,
) -> None:
    b = engineer_in_the_editor(browse)
    page = b.page
    page.get_by_role("link", name="Paste a .env file or JSON into one environment").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Paste into one environment")
    page.get_by_label("Environment").select_option("dev")
    page.get_by_label("Text").fill(
        "STRIPE_PUBLIC_KEY=pk_test_FAKEcustdev\nSTRIPE_SECRET_KEY=sk_test_PASTED\n"
        "SENTRY_DSN=https://dsn\n"
    )
    assert submit(page, page.get_by_role("button", name="Preview the paste")) == 200
    rows = page.locator("table.review tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("unchanged")
    expect(rows.nth(1)).to_contain_text("changed")
    expect(rows.nth(2)).to_contain_text("added")
    b.shot("paste-preview")
    assert submit(page, page.get_by_role("button", name="Review 2 cells")) == 200
    expect(page.get_by_text("1 added, 1 changed, 0 removed")).to_be_visible()
    submit(page, page.get_by_role("button", name="Save as one new version"))
    expect(page.get_by_text("Saved as version")).to_be_visible()
    document = documents.parse(aws.read_current("customer-portal-secrets").text or "")
    assert document["dev"]["stripe"]["secret_key"] == "sk_test_PASTED"
    assert document["dev"]["sentry"] == {"dsn": "https://dsn"}


def test_a_revealed_value_counts_down_copies_hides_and_the_cell_comes_back_in_place(
    browse: Any, settings: Any
) -> None:
    settings.PORTAL_REVEAL_SECONDS = 30
    b = browse()
    page = b.page
    b.context.grant_permissions(["clipboard-read", "clipboard-write"])
    b.sign_in("engineer")
    b.goto(GRID)
    reveal = page.get_by_role("button", name="Reveal dev stripe secret_key")
    cell = grid_cell(page, "Reveal dev stripe secret_key")
    masked_html = cell.inner_html()
    table_box = page.locator("table.grid").bounding_box()
    reveal.click()
    expect(cell.locator("code.revealed")).to_have_text("sk_test_FAKEcustdev")
    hide = cell.get_by_role("button", name=re.compile(r"^Hide \d+ s$"))
    expect(hide).to_have_text(re.compile(r"Hide (2[0-9]|30) s"))
    expect(hide).not_to_have_text("Hide 30 s", timeout=3000)  # it counts down
    b.shot("revealed-with-copy-and-hide")
    cell.get_by_role("button", name="Copy").click()
    expect(cell.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "sk_test_FAKEcustdev"
    hide.click()
    expect(cell.locator("code.revealed")).to_have_count(0)
    back = page.get_by_role("button", name="Reveal dev stripe secret_key")
    expect(back).to_be_focused()
    assert cell.inner_html() == masked_html  # mask, type, fingerprint and button, no reload
    assert page.locator("table.grid").bounding_box() == table_box  # no layout jump
    assert "sk_test_FAKEcustdev" not in page.content()
    back.click()  # the restored button works again (htmx re-processed it)
    expect(cell.locator("code.revealed")).to_have_text("sk_test_FAKEcustdev")


def test_the_grid_fits_1366_pixels_with_sticky_headers_a_key_filter_and_folding_services(
    browse: Any,
) -> None:
    b = browse()
    page = b.page
    page.set_viewport_size({"width": 1366, "height": 400})
    b.sign_in("engineer")
    b.goto(GRID)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # 4 environments
    box = page.locator(".grid-scroll")
    page.evaluate("document.querySelector('table.grid').style.minWidth = '2400px'")  # 8 columns
    box.evaluate("el => el.scrollBy(400, 300)")
    header_top = page.locator("table.grid thead th").first.bounding_box()
    service_left = page.locator("table.grid th.service").nth(6).bounding_box()
    key_left = page.locator("table.grid th.key").nth(6).bounding_box()
    box_edge = box.bounding_box()
    assert header_top is not None and service_left is not None and box_edge is not None
    assert abs(header_top["y"] - box_edge["y"]) < 3  # the header row stays in view
    assert abs(service_left["x"] - box_edge["x"]) < 3  # so does the service column
    assert key_left is not None and key_left["x"] >= service_left["x"] + service_left["width"] - 1
    b.shot("grid-scrolled")
    box.evaluate("el => el.scrollTo(0, 0)")

    page.get_by_label("Filter keys").fill("secret")
    expect(page.get_by_role("status").filter(has_text="keys")).to_have_text("3 of 11 keys")
    expect(page.locator("table.grid th.key:visible")).to_have_text(
        ["server_hostname", "client_secret", "public_key", "secret_key", "webhook_secret"]
    )  # each service's first row stays to name it
    page.get_by_label("Filter keys").fill("")
    page.get_by_role("button", name="Fold stripe").click()
    expect(page.locator("table.grid th.key:visible")).to_have_count(9)
    b.shot("grid-stripe-folded")
    page.get_by_role("button", name="Unfold stripe").click()
    expect(page.locator("table.grid th.key:visible")).to_have_count(11)
