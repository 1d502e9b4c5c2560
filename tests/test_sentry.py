"""Error reports to Sentry carry no value: a save that crashes while holding a canary (in the
request body, a local variable and the exception's message) sends an event without it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from secrets_admin.observability import sentry

from .conftest import STANDARD_DOC
from .portal_flows import save_that_crashes

pytestmark = pytest.mark.django_db

NAME = "shop-secrets"
CANARY = "CANARY-sentry-3e9d"


class Captured(Transport):
    """A transport that keeps what would be sent (no network)."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(json.loads(item.get_bytes()))


@pytest.fixture
def reports() -> Iterator[Captured]:
    transport = Captured()
    sentry.init("https://public@sentry.example.invalid/1", environment="test", transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: the SDK stays installed but sends nothing


def test_a_crash_inside_a_save_reports_the_error_without_the_value(
    reports: Captured, as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    save_that_crashes(as_user(engineer), NAME, CANARY, monkeypatch)
    sentry_sdk.flush()

    crash = next(
        e
        for e in reports.events
        if any(x.get("type") == "ValueError" for x in e.get("exception", {}).get("values", []))
    )
    [exception] = [x for x in crash["exception"]["values"] if x["type"] == "ValueError"]
    frames = exception["stacktrace"]["frames"]
    assert any(f["function"] == "stage_version" for f in frames)
    assert not any("vars" in f for f in frames)
    assert all(set(e.get("request", {})) <= {"method", "url"} for e in reports.events)
    assert CANARY not in json.dumps(reports.events)


def test_sentry_is_off_without_a_dsn(settings: Any) -> None:
    assert settings.SENTRY_DSN == ""
    assert sentry_sdk.get_client().dsn is None
