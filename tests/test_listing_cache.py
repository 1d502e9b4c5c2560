"""The list's cache: stale-while-revalidate, one background refresh, progress on a cold start.

Behaviour only, no timing: a background fetch is recorded by replacing ``listing._spawn`` (the
one place a thread is started) and run when the test says so.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from secrets_admin import aws, listing

from .conftest import STANDARD_DOC

pytestmark = pytest.mark.django_db

LIST = "secrets_admin:secret_list"
STATUS = "secrets_admin:secret_list_status"
REFRESH = "secrets_admin:secret_list_refresh"


@pytest.fixture
def spawned(monkeypatch: Any) -> list[Callable[[], None]]:
    """Background fetches started, not yet run."""
    work: list[Callable[[], None]] = []
    monkeypatch.setattr(listing, "_spawn", work.append)
    return work


@pytest.fixture
def list_calls() -> list[str]:
    calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: calls.append(model.name)
    )
    return calls


def _status(client: Any, shown: str = "") -> Any:
    return client.get(reverse(STATUS), {"shown": shown}, headers={"HX-Request": "true"})


def test_account_listed_within_the_wait_is_shown_at_once(
    as_user: Any, auditor: Any, make_secret: Any, spawned: list[Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(aws, "LIST_PAGE_SIZE", 1)  # 3 pages, well within the default wait
    for i in range(3):
        make_secret(f"w{i}-secrets", STANDARD_DOC)
    html = as_user(auditor).get(reverse(LIST)).content.decode()
    assert all(f"w{i}-secrets" in html for i in range(3))
    assert spawned == []


def test_small_account_is_listed_at_once_with_one_call(
    as_user: Any, auditor: Any, make_secret: Any, spawned: list[Any], list_calls: list[str]
) -> None:
    make_secret("a-secrets", STANDARD_DOC)
    html = as_user(auditor).get(reverse(LIST)).content.decode()
    assert "a-secrets" in html and "Listed from AWS at" in html
    assert list_calls == ["ListSecrets"]
    assert spawned == []


def test_first_load_of_a_large_account_shows_progress_then_fills_in(
    as_user: Any,
    auditor: Any,
    make_secret: Any,
    spawned: list[Any],
    monkeypatch: Any,
    settings: Any,
) -> None:
    settings.PORTAL_LIST_WAIT_SECONDS = 0  # one page in the request, the rest in the background
    monkeypatch.setattr(aws, "LIST_PAGE_SIZE", 2)  # 5 secrets = 3 pages
    for i in range(5):
        make_secret(f"r{i}-secrets", STANDARD_DOC)
    client = as_user(auditor)

    first = client.get(reverse(LIST))
    html = first.content.decode()
    assert first.status_code == HTTPStatus.OK
    assert "Listing this account" in html and "2 so far" in html
    assert 'hx-trigger="load delay:1s"' in html  # the status line polls
    assert "r0-secrets" not in html
    assert len(spawned) == 1

    again = client.get(reverse(LIST)).content.decode()  # while the fetch runs: no second one
    assert "Listing this account" in again
    assert len(spawned) == 1
    polling = _status(client)
    assert "2 so far" in polling.content.decode() and "HX-Trigger" not in polling

    spawned.pop()()
    done = _status(client)
    assert done["HX-Trigger"] == '{"listing-updated": {}}'
    assert "Listed from AWS at" in done.content.decode()
    assert "hx-trigger" not in done.content.decode()  # polling stops
    table = client.get(reverse(LIST), headers={"HX-Request": "true"}).content.decode()
    assert all(f"r{i}-secrets" in table for i in range(5))


def test_stale_listing_is_served_at_once_and_refreshed_once(
    as_user: Any,
    auditor: Any,
    make_secret: Any,
    spawned: list[Any],
    list_calls: list[str],
    settings: Any,
) -> None:
    settings.PORTAL_LIST_CACHE_SECONDS = 0  # stale as soon as it is stored
    make_secret("old-secrets", STANDARD_DOC)
    client = as_user(auditor)
    client.get(reverse(LIST))
    make_secret("new-secrets", STANDARD_DOC)
    list_calls.clear()

    pages = [client.get(reverse(LIST)).content.decode() for _ in range(3)]
    for html in pages:
        assert "old-secrets" in html and "new-secrets" not in html
        assert "refreshing" in html
    assert list_calls == []  # nobody waited for AWS
    assert len(spawned) == 1  # one refresh for many views

    shown = listing.get_listing().stamp
    spawned.pop()()
    assert _status(client, shown)["HX-Trigger"] == '{"listing-updated": {}}'
    assert "new-secrets" in client.get(reverse(LIST)).content.decode()


def test_status_does_not_trigger_a_reload_when_the_shown_listing_is_current(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", STANDARD_DOC)
    client = as_user(auditor)
    client.get(reverse(LIST))
    response = _status(client, listing.get_listing().stamp)
    assert response.status_code == HTTPStatus.OK
    assert "HX-Trigger" not in response
    assert response.content.decode().lstrip().startswith('<p id="secret-list-status"')


def test_refresh_keeps_the_old_listing_on_screen_while_aws_is_listed_again(
    as_user: Any, auditor: Any, make_secret: Any, spawned: list[Any]
) -> None:
    make_secret("old-secrets", STANDARD_DOC)
    client = as_user(auditor)
    client.get(reverse(LIST))
    make_secret("new-secrets", STANDARD_DOC)

    response = client.post(reverse(REFRESH))
    assert response.status_code == HTTPStatus.FOUND
    assert len(spawned) == 1
    html = client.get(reverse(LIST)).content.decode()
    assert "old-secrets" in html and "refreshing" in html
    assert len(spawned) == 1
    spawned.pop()()
    assert "new-secrets" in client.get(reverse(LIST)).content.decode()


def test_portal_write_marks_the_listing_stale_without_dropping_it(
    as_user: Any, auditor: Any, make_secret: Any, spawned: list[Any]
) -> None:
    make_secret("a-secrets", STANDARD_DOC)
    client = as_user(auditor)
    client.get(reverse(LIST))
    listing.invalidate()
    state = listing.listing_state()
    assert state.listing is not None and state.stale and state.fetching
    assert [m.name for m in state.listing.secrets] == ["a-secrets"]
    assert len(spawned) == 1


def test_failed_background_fetch_is_shown_and_not_retried_at_once(
    as_user: Any,
    auditor: Any,
    make_secret: Any,
    spawned: list[Any],
    settings: Any,
    monkeypatch: Any,
) -> None:
    settings.PORTAL_LIST_CACHE_SECONDS = 0
    make_secret("a-secrets", STANDARD_DOC)
    client = as_user(auditor)
    client.get(reverse(LIST))
    client.get(reverse(LIST))  # stale: refresh started

    def throttled(token: str | None = None) -> Any:
        raise aws.Throttled()

    monkeypatch.setattr(aws, "list_secrets_page", throttled)
    spawned.pop()()
    html = client.get(reverse(LIST)).content.decode()
    assert "a-secrets" in html  # the old listing is still served
    assert "listing failed" in html and "throttling" in html
    assert spawned == []  # no new refresh while the error is shown
    assert cache.get(listing.LOCK_KEY) is None


def test_cold_start_failure_on_the_first_page_is_an_error_page(
    as_user: Any, auditor: Any, monkeypatch: Any
) -> None:
    def denied(token: str | None = None) -> Any:
        raise aws.AccessDenied()

    monkeypatch.setattr(aws, "list_secrets_page", denied)
    response = as_user(auditor).get(reverse(LIST))
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert b"IAM role" in response.content
    assert cache.get(listing.LOCK_KEY) is None  # the next view can try again


def test_background_thread_lists_to_the_end(
    as_user: Any, auditor: Any, make_secret: Any, monkeypatch: Any, settings: Any
) -> None:
    settings.PORTAL_LIST_WAIT_SECONDS = 0
    monkeypatch.setattr(aws, "LIST_PAGE_SIZE", 1)
    for i in range(3):
        make_secret(f"t{i}-secrets", STANDARD_DOC)
    started: list[threading.Thread] = []
    real_thread = threading.Thread

    def spawn(work: Callable[[], None]) -> None:
        thread = real_thread(target=work, daemon=True)
        started.append(thread)
        thread.start()

    monkeypatch.setattr(listing, "_spawn", spawn)
    client = as_user(auditor)
    assert "Listing this account" in client.get(reverse(LIST)).content.decode()
    started[0].join(timeout=30)
    html = client.get(reverse(LIST)).content.decode()
    assert all(f"t{i}-secrets" in html for i in range(3))
    assert cache.get(listing.PROGRESS_KEY) is None and cache.get(listing.LOCK_KEY) is None


def test_cache_holds_metadata_and_never_a_value(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", {"dev": {"stripe": {"secret_key": "CANARY-cache-5e1f"}}})
    client = as_user(engineer)
    client.get(reverse(LIST))
    client.get(reverse("secrets_admin:secret_detail", args=["a-secrets"]))
    for key in (listing.STAMP_KEY, listing.data_key(cache.get(listing.STAMP_KEY).fetched_at)):
        assert cache.get(key) is not None
        assert b"CANARY" not in pickle.dumps(cache.get(key))


def test_search_matches_name_and_description_case_insensitively(make_secret: Any) -> None:
    make_secret("alpha-secrets", STANDARD_DOC, Description="Payments API")
    make_secret("beta-secrets", STANDARD_DOC)
    data = listing.get_listing()
    assert [m.name for m in listing.search(data, "PAYMENTS")] == ["alpha-secrets"]
    assert [m.name for m in listing.search(data, "Beta")] == ["beta-secrets"]
    assert len(listing.search(data, "  ")) == 2
    restored = pickle.loads(pickle.dumps(data))  # noqa: S301 - our own object, as Redis returns it
    assert [m.name for m in listing.search(restored, "payments")] == ["alpha-secrets"]


def test_status_line_is_for_signed_in_users_with_a_role(
    client: Any, as_user: Any, outsider: Any, auditor: Any
) -> None:
    anonymous = client.get(reverse(STATUS))
    assert anonymous.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in anonymous["Location"]
    assert as_user(outsider).get(reverse(STATUS)).status_code == HTTPStatus.FORBIDDEN
    assert as_user(auditor).get(reverse(STATUS)).status_code == HTTPStatus.OK


def test_refresh_needs_a_post_and_a_role(client: Any, as_user: Any, outsider: Any) -> None:
    assert client.post(reverse(REFRESH)).status_code == HTTPStatus.FOUND  # to sign-in
    signed_in = as_user(outsider)
    assert signed_in.post(reverse(REFRESH)).status_code == HTTPStatus.FORBIDDEN
    assert signed_in.get(reverse(REFRESH)).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_unexpected_failure_in_the_background_is_shown_and_frees_the_lock(
    as_user: Any, auditor: Any, spawned: list[Any], monkeypatch: Any, settings: Any, caplog: Any
) -> None:
    settings.PORTAL_LIST_WAIT_SECONDS = 0
    monkeypatch.setattr(aws, "LIST_PAGE_SIZE", 1)
    client = as_user(auditor)
    real_page = aws.list_secrets_page
    for name in ("a-secrets", "b-secrets"):
        aws.create_secret(name, text="{}")
    client.get(reverse(LIST))  # first page read, the rest spawned

    def broken(token: str | None = None) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(aws, "list_secrets_page", broken)
    spawned.pop()()
    assert "background failed" in caplog.text
    assert cache.get(listing.LOCK_KEY) is None
    status = _status(client).content.decode()
    assert "failed unexpectedly" in status and "hx-trigger" not in status
    monkeypatch.setattr(aws, "list_secrets_page", real_page)
    html = client.get(reverse(LIST)).content.decode()  # the list asks again: a new listing
    assert "Listing this account" in html and "failed" not in html
    assert len(spawned) == 1
