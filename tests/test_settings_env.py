"""Settings read from the environment take effect (each is set once in portal/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setting_in_fresh_process(name: str, **env: str) -> str:
    """The value of ``settings.<name>`` in a new interpreter started with ``env`` added."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MAX_")}
    clean.update(env, DJANGO_SETTINGS_MODULE="portal.settings", PORTAL_TESTING="1")
    code = f"from django.conf import settings; print(settings.{name})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_portal_max_post_fields_sets_djangos_field_limit() -> None:
    assert (
        _setting_in_fresh_process("DATA_UPLOAD_MAX_NUMBER_FIELDS", PORTAL_MAX_POST_FIELDS="37")
        == "37"
    )


def test_the_field_limit_defaults_to_room_for_a_full_grid() -> None:
    assert _setting_in_fresh_process("DATA_UPLOAD_MAX_NUMBER_FIELDS") == "20000"


def test_portal_max_post_bytes_sets_djangos_size_limit() -> None:
    assert (
        _setting_in_fresh_process("DATA_UPLOAD_MAX_MEMORY_SIZE", PORTAL_MAX_POST_BYTES="4096")
        == "4096"
    )
