"""Abuse and bad input (ASVS 5.0 2.4.1, V2.2): reveals are rate limited per person; oversized and
malformed posts get a 400 with a sentence, never a 500."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse

from secrets_admin import aws, ratelimit
from secrets_admin.models import AuditEvent

from .conftest import STANDARD_DOC
from .urltable import POST_VIEWS, SAMPLE_SECRET, all_urls

pytestmark = pytest.mark.django_db


def _reveal(client: Any, htmx: bool = True) -> Any:
    version = aws.read_current(SAMPLE_SECRET).version_id
    return client.post(
        reverse("secrets_admin:cell_reveal", args=[SAMPLE_SECRET]),
        {"version_id": version, "environment": "dev", "service": "stripe", "key": "secret_key"},
        headers={"HX-Request": "true"} if htmx else {},
    )


def test_reveals_beyond_the_rate_get_429_with_a_message_and_no_value(
    as_user: Any, engineer: Any, make_secret: Any, settings: Any
) -> None:
    settings.PORTAL_REVEAL_RATE = "3/m"
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client = as_user(engineer)
    statuses = [_reveal(client).status_code for _ in range(3)]
    assert statuses == [HTTPStatus.OK] * 3
    refused = _reveal(client)
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    body = refused.content.decode()
    assert "Too many reveals: the limit is 3 per minute" in body
    assert "sk_test_dev" not in body
    assert body.lstrip().startswith('<div id="cell-value"')
    assert 1 <= int(refused["Retry-After"]) <= 60
    page = _reveal(client, htmx=False)
    assert page.status_code == HTTPStatus.TOO_MANY_REQUESTS and b"<html" in page.content
    assert AuditEvent.objects.filter(action="reveal", outcome="succeeded").count() == 3


def test_the_rate_limit_is_per_person(
    client: Any, engineer: Any, approver: Any, make_secret: Any, settings: Any
) -> None:
    settings.PORTAL_REVEAL_RATE = "1/h"
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client.force_login(engineer)
    assert _reveal(client).status_code == HTTPStatus.OK
    assert _reveal(client).status_code == HTTPStatus.TOO_MANY_REQUESTS
    other = Client()
    other.force_login(approver)
    assert _reveal(other).status_code == HTTPStatus.OK


def test_the_window_opens_again_after_its_time() -> None:
    rate = ratelimit.Rate.parse("2/10s")
    start = 1_000_000.0  # a multiple of 10: the start of a window
    assert ratelimit.consume("t", "u", rate, now=start) is None
    assert ratelimit.consume("t", "u", rate, now=start + 1) is None
    limited = ratelimit.consume("t", "u", rate, now=start + 2)
    assert limited is not None and limited.retry_after == 8
    assert ratelimit.consume("t", "u", rate, now=start + 10) is None


@pytest.mark.parametrize(
    ("text", "count", "seconds", "words"),
    [
        ("30/m", 30, 60, "30 per minute"),
        (" 200 / h ", 200, 3600, "200 per hour"),
        ("5/10s", 5, 10, "5 per 10 seconds"),
        ("1/d", 1, 86400, "1 per day"),
    ],
)
def test_rates_parse(text: str, count: int, seconds: int, words: str) -> None:
    rate = ratelimit.Rate.parse(text)
    assert (rate.count, rate.seconds, rate.describe()) == (count, seconds, words)


@pytest.mark.parametrize("text", ["", "30", "m", "0/m", "30/x", "30/0s", "-1/m", "30/m/h"])
def test_bad_rates_are_refused_by_the_system_check(text: str, settings: Any) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        ratelimit.Rate.parse(text)
    settings.PORTAL_REVEAL_RATE = text
    with pytest.raises(SystemCheckError, match=r"portal\.E001"):
        call_command("check")


@pytest.fixture
def signed_in(engineer: Any, make_secret: Any) -> Client:
    """An engineer's client as a browser is: CSRF enforced, the token sent in the htmx header
    (so bodies that carry no token still reach the view)."""
    make_secret(SAMPLE_SECRET, STANDARD_DOC)
    client = Client(enforce_csrf_checks=True)
    client.force_login(engineer)
    client.get(reverse("secrets_admin:secret_list"))
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    return client


def _post_urls() -> list[str]:
    return [u.path for u in all_urls() if str(u) in POST_VIEWS]


def test_an_oversized_post_is_a_400_naming_the_limit(signed_in: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    for path in _post_urls():
        response = signed_in.post(path, {"key": "x" * 20_000})
        assert response.status_code == HTTPStatus.BAD_REQUEST, path
        assert b"larger than the portal accepts (10,000 bytes at most)" in response.content
        htmx = signed_in.post(path, {"key": "x" * 20_000}, headers={"HX-Request": "true"})
        assert htmx.status_code == HTTPStatus.BAD_REQUEST
        assert htmx.content.lstrip().startswith(b'<div id="error-message">')


def test_too_many_fields_is_a_400_naming_the_limit(signed_in: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    for path in _post_urls():
        response = signed_in.post(path, {f"f{i}": "1" for i in range(100)})
        assert response.status_code == HTTPStatus.BAD_REQUEST, path
        assert b"more fields than the portal accepts (50 at most)" in response.content


MALFORMED_BODIES = [
    ("multipart/form-data", b"--nope\r\nContent-Disposition: form-data\r\n\r\nx"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="k"\r\n'),
    ("multipart/form-data; boundary=b", b"\xff\xfe garbage"),
    ("application/x-www-form-urlencoded", b"version_id=%ff%fe&environment=%00&key=%zz&&=&a"),
    ("application/x-www-form-urlencoded", "environment=d\u00e9v&service=\u2603".encode()),
    ("application/x-www-form-urlencoded; charset=nonsense", b"a=b"),
    ("application/json", b'{"version_id": [1, 2'),
    ("text/plain", b"\x00" * 1000),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_BODIES)
def test_malformed_posts_never_cause_a_500(
    signed_in: Client, content_type: str, body: bytes
) -> None:
    for path in _post_urls():
        for headers in ({}, {"HX-Request": "true"}):
            response = signed_in.generic(
                "POST", path, body, content_type=content_type, headers=headers
            )
            assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, (path, response)


@pytest.mark.parametrize(
    "fields",
    [
        {"version_id": "v" * 65, "environment": "dev", "service": "s", "key": "k"},
        {"version_id": "\x00", "environment": "\x00", "service": "\x00", "key": "\x00"},
        {"version_id": "../../etc", "environment": "dev", "service": "s", "key": "k"},
        {"version_id": "x", "environment": "e" * 10_000, "service": "s", "key": "k"},
        {"version_id": ["a", "b"], "environment": "dev", "service": "s", "key": "k"},
    ],
)
def test_odd_reveal_fields_are_refused_cleanly(signed_in: Client, fields: dict[str, Any]) -> None:
    response = signed_in.post(reverse("secrets_admin:cell_reveal", args=[SAMPLE_SECRET]), fields)
    assert response.status_code in (
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.CONFLICT,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.NOT_FOUND,
    ), response.status_code
    assert b"sk_test" not in response.content


def test_odd_query_strings_never_cause_a_500(signed_in: Client) -> None:
    for url in all_urls():
        for query in ("?page=-1", "?page=abc", "?q=%00%ff", "?q=" + "x" * 5000, "?page=99999"):
            response = signed_in.get(url.path + query)
            assert response.status_code < HTTPStatus.INTERNAL_SERVER_ERROR, (str(url), query)
