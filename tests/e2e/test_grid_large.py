"""A large grid in the browser: its first services shown, the others collapsed and fetched on
demand with the keyboard alone, axe-clean before and after, focus kept on the expanded service.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from secrets_admin import aws

from .test_a11y import BLOCKING, run_axe

NAME = "large-grid-secrets"


def _large_document() -> str:
    return json.dumps(
        {
            f"env{e}": {
                f"svc{s:02d}": {f"k{k}": f"v-{e}-{s}-{k}" for k in range(4)} for s in range(30)
            }
            for e in range(6)
        }
    )


def test_collapsed_services_open_with_the_keyboard_and_stay_accessible(browse: Any) -> None:
    aws.client().create_secret(Name=NAME, SecretString=_large_document())
    b = browse()
    b.sign_in("engineer")
    b.goto(f"/secrets/{NAME}/")
    assert not [v for v in run_axe(b.page) if v["impact"] in BLOCKING]
    shown = b.page.locator("table.grid button.reveal").count()
    assert 0 < shown < 30 * 4 * 6
    link = b.page.get_by_role("link", name="Show the 4 keys of svc29")
    link.focus()
    b.page.keyboard.press("Enter")
    header = b.page.locator("tbody.service-rows th.service", has_text="svc29").first
    expect(header).to_be_focused()
    expect(b.page.get_by_role("button", name="Reveal env5 svc29 k3")).to_have_count(1)
    assert b.page.locator("table.grid button.reveal").count() == shown + 4 * 6
    # The expanded rows reveal like any other: the value replaces the cell, focus follows it.
    b.page.get_by_role("button", name="Reveal env5 svc29 k3").focus()
    b.page.keyboard.press("Enter")
    expect(b.page.locator("code.revealed")).to_have_text("v-5-29-3")
    expect(b.page.locator("code.revealed")).to_be_focused()
    assert not [v for v in run_axe(b.page) if v["impact"] in BLOCKING]
    b.shot("large-grid-expanded")
