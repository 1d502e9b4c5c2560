"""The stylesheet's colours keep WCAG 2.2 AA contrast in the light and the dark scheme.

Text on its backgrounds needs 4.5:1 (WCAG 2.2 SC 1.4.3), the focus ring 3:1 against the page
(SC 1.4.11). The colours are read from ``static/portal/portal.css`` itself: the custom properties
of ``:root`` (light) and of ``:root`` inside ``@media (prefers-color-scheme: dark)``, and the few
literal colours of rules (buttons, fingerprints, the focus ring). axe-core checks the rendered
pages (``tests/e2e/test_a11y.py``); this checks every pair the stylesheet can produce, including
states no page shows during the browser run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parent.parent / "static" / "portal" / "portal.css").read_text()

#: (text, background) custom-property pairs that occur: plain text, muted text and links on the
#: page, panels and table headers; badges and notices; text and links inside coloured rows
#: (current version, missing cell, revealed value, clash).
TEXT_PAIRS = [
    (text, background)
    for text in ("fg", "muted", "accent")
    for background in ("bg", "soft", "ok-bg", "warn-bg", "danger-bg")
] + [("ok", "ok-bg"), ("warn", "warn-bg"), ("danger", "danger-bg"), ("danger", "bg")]


def _variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+)\s*:\s*(#[0-9a-fA-F]{3,6})", block))


def _schemes() -> dict[str, dict[str, str]]:
    light_root = re.search(r":root\s*\{([^}]*)\}", CSS)
    dark_media = CSS[CSS.index("@media (prefers-color-scheme: dark)") :]
    dark_root = re.search(r":root\s*\{([^}]*)\}", dark_media)
    assert light_root and dark_root
    light = _variables(light_root.group(1))
    return {"light": light, "dark": {**light, **_variables(dark_root.group(1))}}


def _rule_colour(selector: str, prop: str) -> str:
    """The literal colour of ``prop`` in the first (light) rule for ``selector``."""
    rule = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert rule, selector
    found = re.search(rf"(?:^|[;\s]){prop}\s*:[^;]*?(#[0-9a-fA-F]{{3,6}})", rule.group(1))
    assert found, (selector, prop)
    return found.group(1)


def _luminance(colour: str) -> float:
    hex_ = colour.lstrip("#")
    if len(hex_) == 3:
        hex_ = "".join(c * 2 for c in hex_)
    channels = [int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2.2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("text", "background"), TEXT_PAIRS)
def test_text_colours_have_aa_contrast(scheme: str, text: str, background: str) -> None:
    colours = _schemes()[scheme]
    assert contrast(colours[text], colours[background]) >= 4.5, (scheme, text, background)


def test_literal_colours_have_aa_contrast_in_both_schemes() -> None:
    light, dark = _schemes()["light"], _schemes()["dark"]
    button = (_rule_colour("button", "color"), _rule_colour("button", "background"))
    assert contrast(*button) >= 4.5
    fingerprint = _rule_colour(".fp", "color")
    for background in ("bg", "soft", "ok-bg"):
        assert contrast(fingerprint, light[background]) >= 4.5
        assert contrast(dark["fp"], dark[background]) >= 4.5
    ring = _rule_colour("textarea:focus-visible", "outline")
    for background in ("bg", "soft"):
        assert contrast(ring, light[background]) >= 3
        assert contrast(dark["focus"], dark[background]) >= 3
