"""Operators' log lines: one per request and per audit event, JSON in production and text in the
demo, and never a secret value - not even in an unexpected exception's traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin.observability.logs import ExpectedClientErrors, JsonLineFormatter, TextFormatter

from .conftest import STANDARD_DOC
from .portal_flows import save_cells, save_that_crashes

pytestmark = pytest.mark.django_db

NAME = "shop-secrets"
CANARY = "CANARY-log-4b1d"


class Lines(logging.Handler):
    """Every record as the production (JSON) and the demo (text) formatter write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ExpectedClientErrors())
        self.json_formatter = JsonLineFormatter()
        self.text_formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.json: list[dict[str, Any]] = []
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.json.append(json.loads(self.json_formatter.format(record)))
        self.text.append(self.text_formatter.format(record))

    def everything(self) -> str:
        return "\n".join([*map(json.dumps, self.json), *self.text])

    def of(self, logger: str) -> list[dict[str, Any]]:
        return [line for line in self.json if line["logger"] == logger]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_one_json_line_per_request_with_id_user_route_status_duration_and_aws_calls(
    lines: Lines, as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    response = as_user(engineer).get(reverse("secrets_admin:secret_detail", args=[NAME]))

    [line] = lines.of("portal.request")
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["user"], line["route"], line["method"], line["status"]) == (
        "erin-engineer",
        "secrets_admin:secret_detail",
        "GET",
        HTTPStatus.OK,
    )
    assert line["duration_ms"] > 0
    assert line["aws_calls"] == len(line["aws_operations"].split(",")) >= 1
    assert "GetSecretValue" in line["aws_operations"].split(",")
    assert "secrets_admin:secret_detail 200" in "\n".join(lines.text)


def test_aws_errors_are_counted_as_calls(lines: Lines, as_user: Any, engineer: Any) -> None:
    response = as_user(engineer).get(reverse("secrets_admin:secret_detail", args=["gone-secrets"]))

    [line] = lines.of("portal.request")
    assert line["status"] == response.status_code == HTTPStatus.NOT_FOUND
    assert line["aws_calls"] >= 1


def test_one_line_per_audit_event_with_the_request_id(
    lines: Lines,
    as_user: Any,
    engineer: Any,
    make_secret: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_secret(NAME, STANDARD_DOC)
    with django_capture_on_commit_callbacks(execute=True):
        saved = save_cells(as_user(engineer), NAME, {("dev", "stripe", "secret_key"): CANARY})

    audit_lines = lines.of("portal.audit")
    assert audit_lines, "every committed audit event is logged"
    save = next(a for a in audit_lines if a["outcome"] == "succeeded" and a["secret"] == NAME)
    assert save["request_id"] == saved["X-Request-ID"]
    assert save["actor"] == "erin-engineer" and save["seq"] >= 1
    assert CANARY not in lines.everything()


def test_an_unexpected_exception_during_a_save_logs_no_value(
    lines: Lines, as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    save_that_crashes(as_user(engineer), NAME, CANARY, monkeypatch)

    crash = next(line for line in lines.json if line.get("exc_type") == "builtins.ValueError")
    assert "in stage_version" in crash["traceback"]
    assert any("message withheld" in text for text in lines.text)
    assert CANARY not in lines.everything()


def test_expected_refusals_log_no_traceback(
    lines: Lines, as_user: Any, outsider: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    client = as_user(outsider)
    forbidden = client.get(reverse("secrets_admin:secret_detail", args=[NAME]))
    missing = client.get("/no-such-page/")

    assert forbidden.status_code == HTTPStatus.FORBIDDEN
    assert missing.status_code == HTTPStatus.NOT_FOUND
    statuses = [line["status"] for line in lines.of("portal.request")]
    assert statuses == [HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND]
    assert "Traceback" not in lines.everything()
    assert not any("traceback" in line for line in lines.json)


def test_a_probe_answered_before_url_resolution_is_logged_under_its_route_name(
    lines: Lines, client: Any
) -> None:
    response = client.get(reverse("healthz"))

    [line] = lines.of("portal.request")
    assert (line["route"], line["status"]) == ("healthz", response.status_code)
