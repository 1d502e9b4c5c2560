"""The grid served per version from the shared cache, large grids shown service by service, one
audit row per reveal, and the listing written through by the portal's own writes.

AWS calls are counted at the boto3 client (a ``before-call`` event hook), never by patching it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from html import unescape
from http import HTTPStatus
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from secrets_admin import audit_verify, aws, documents, grid, listing, reads
from secrets_admin.models import AuditEvent, SecretSummary

from .conftest import CallCounter
from .test_aws import inject_error

pytestmark = pytest.mark.django_db

NAME = "grid-secrets"
CANARY_DOC = {
    "dev": {"stripe": {"secret_key": "CANARY-grid-dev-5e1f"}, "db": {"port": 5432}},
    "main": {"stripe": {"secret_key": "CANARY-grid-main-77aa"}},
}
CANARIES = ("CANARY-grid-dev-5e1f", "CANARY-grid-main-77aa")


def _grid(client: Any, name: str = NAME, **params: str) -> Any:
    return client.get(reverse("secrets_admin:secret_detail", args=[name]), params)


def _large_doc(environments: int = 10, services: int = 40, keys: int = 2) -> dict[str, Any]:
    return {
        f"env{e}": {
            f"svc{s:02d}": {f"k{k}": f"value-{e}-{s}-{k}" for k in range(keys)}
            for s in range(services)
        }
        for e in range(environments)
    }


def _spy_on_cache(monkeypatch: pytest.MonkeyPatch, method: str) -> list[str]:
    """The keys the cache's ``method`` (``get``, ``set``) is called with from now on."""
    keys: list[str] = []
    real = getattr(cache, method)

    def spy(key: str, *args: Any, **kwargs: Any) -> Any:
        keys.append(key)
        return real(key, *args, **kwargs)

    monkeypatch.setattr(cache, method, spy)
    return keys


def _cached_bytes() -> bytes:
    return b"".join(v for v in cache._cache.values() if isinstance(v, bytes))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# The grid per version


def test_grid_of_a_version_seen_before_makes_no_get_secret_value(
    as_user: Any, engineer: Any, make_secret: Any, calls: CallCounter
) -> None:
    make_secret(NAME, CANARY_DOC)
    client = as_user(engineer)
    first = _grid(client).content.decode()
    assert calls.count("GetSecretValue") == 1
    calls.calls.clear()
    again = _grid(client).content.decode()
    assert calls.calls == ["DescribeSecret"]
    assert again.count('name="cell"') == first.count('name="cell"') == 3
    assert aws.read_current(NAME).version_id in again


def test_rows_seen_before_by_this_process_are_not_read_again_until_the_cache_is_dropped(
    as_user: Any, engineer: Any, make_secret: Any, calls: CallCounter, monkeypatch: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    client = as_user(engineer)

    def table() -> str:
        html = _grid(client).content.decode()
        return html[html.index("<table") : html.index("</table>")]

    first = table()
    read = _spy_on_cache(monkeypatch, "get")
    assert table() == first
    assert [k for k in read if ":rows:" in k] == []  # the head only, from the shared cache
    cache.clear()  # e.g. a new fingerprint key rolled out, or the shared cache restarted
    calls.calls.clear()
    assert table() == first
    assert calls.count("GetSecretValue") == 1  # rebuilt, not served from this process


def test_a_new_current_version_is_read_once_then_served_from_the_cache(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any, calls: CallCounter
) -> None:
    make_secret(NAME, CANARY_DOC)
    client = as_user(engineer)
    _grid(client)
    old = aws.read_current(NAME).version_id
    token = "b" * 32
    sm.put_secret_value(
        SecretId=NAME,
        SecretString=json.dumps({"dev": {"app": {"new_key": "x"}}}),
        ClientRequestToken=token,
        VersionStages=["PORTAL-PENDING-TEST"],
    )
    sm.update_secret_version_stage(
        SecretId=NAME, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=old
    )
    calls.calls.clear()
    html = _grid(client).content.decode()
    assert "new_key" in html and token in html
    assert calls.count("GetSecretValue") == 1
    calls.calls.clear()
    _grid(client)
    assert calls.calls == ["DescribeSecret"]


def test_the_cache_holds_names_and_fingerprints_never_values(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    html = _grid(as_user(engineer)).content
    cached = _cached_bytes()
    assert b"stripe" in cached  # the grid is cached ...
    for canary in CANARIES:  # ... without a value, in the cache and on the page
        assert canary.encode() not in cached
        assert canary.encode() not in html


def test_a_viewer_who_may_not_reveal_never_gets_reveal_buttons_from_the_cache(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any, client: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    assert 'name="cell"' in _grid(as_user(engineer)).content.decode()
    client.logout()
    html = _grid(as_user(auditor)).content.decode()
    assert "stripe" in html and 'name="cell"' not in html and "Reveal" not in html


def test_large_grid_shows_its_first_services_and_fetches_the_others_for_the_version_on_screen(
    as_user: Any, engineer: Any, make_secret: Any, calls: CallCounter
) -> None:
    make_secret(NAME, _large_doc())  # 10 environments x 40 services x 2 keys: 800 cells
    client = as_user(engineer)
    html = _grid(client).content.decode()
    version = aws.read_current(NAME).version_id
    shown = html.count('name="cell"')
    assert 0 < shown <= grid.EAGER_CELLS
    assert "Show the 2 keys of svc39" in html and "Show the 2 keys of svc00" not in html
    calls.calls.clear()
    part = client.get(
        reverse("secrets_admin:secret_detail", args=[NAME]),
        {"service": "svc39", "version": version},
        headers={"HX-Request": "true"},
    )
    assert part.status_code == HTTPStatus.OK
    body = part.content.decode()
    assert body.lstrip().startswith("<tbody") and "<html" not in body
    assert body.count('name="cell"') == 20  # 2 keys in 10 environments
    assert "Reveal env3 svc39 k1" in body and "svc38" not in body
    assert calls.calls == []  # that version's model is cached


def test_expanding_a_service_that_the_version_lacks_is_not_found(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, _large_doc())
    client = as_user(engineer)
    _grid(client)
    version = aws.read_current(NAME).version_id
    for service, v in (("nope", version), ("svc39", "f" * 32)):
        response = client.get(
            reverse("secrets_admin:secret_detail", args=[NAME]),
            {"service": service, "version": v},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == HTTPStatus.NOT_FOUND


def test_without_javascript_the_expand_link_opens_the_page_with_that_service_shown(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, _large_doc())
    client = as_user(engineer)
    version = aws.read_current(NAME).version_id
    html = _grid(client, service="svc39", version=version).content.decode()
    assert "<html" in html and "Reveal env0 svc39 k0" in html
    assert "Show the 2 keys of svc39" not in html and "Show the 2 keys of svc38" in html


# --------------------------------------------------------------------------------------------
# One audit row per reveal


def _reveal(client: Any, version: str, env: str = "dev") -> Any:
    return client.post(
        reverse("secrets_admin:cell_reveal", args=[NAME]),
        {"version_id": version, "cell": json.dumps([env, "stripe", "secret_key"])},
        headers={"HX-Request": "true"},
    )


def test_a_reveal_is_one_audit_row_with_the_cells_fingerprint(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    version = aws.read_current(NAME).version_id
    response = _reveal(as_user(engineer), version)
    assert response.status_code == HTTPStatus.OK and b"CANARY-grid-dev-5e1f" in response.content
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("reveal", "succeeded")
    assert (event.environment, event.service, event.key) == ("dev", "stripe", "secret_key")
    assert event.base_version == version and event.fingerprint_after
    assert audit_verify.verify().ok


def test_an_aws_error_on_reveal_is_recorded_as_a_failed_reveal(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    version = aws.read_current(NAME).version_id
    client = as_user(engineer)
    inject_error("GetSecretValue", "AccessDeniedException", status=400)
    response = _reveal(client, version)
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert b"CANARY" not in response.content
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("reveal", "failed")
    assert event.error_code == "AccessDeniedException" and not event.fingerprint_after


def test_a_cell_absent_from_the_version_is_recorded_as_a_failed_reveal(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    version = aws.read_current(NAME).version_id
    response = _reveal(as_user(engineer), version, env="uat")
    assert response.status_code == HTTPStatus.CONFLICT
    event = AuditEvent.objects.get()
    assert (event.outcome, event.error_code) == ("failed", "CellNotFound")


# --------------------------------------------------------------------------------------------
# Writes update the listing entry they changed


def test_a_write_updates_its_listing_entry_without_listing_the_account(
    make_secret: Any, calls: CallCounter
) -> None:
    make_secret(NAME, CANARY_DOC)
    make_secret("other-secrets", CANARY_DOC)
    before = listing.get_listing()
    fresh_until = cache.get(listing.STAMP_KEY).fresh_until
    calls.calls.clear()
    listing.record_write(NAME, "c" * 32)
    assert calls.calls == []  # no ListSecrets, no DescribeSecret
    after = listing.get_listing()
    entry = next(m for m in after.secrets if m.name == NAME)
    assert entry.current_version == "c" * 32
    assert after.stamp != before.stamp  # pages showing the old listing reload their table
    assert [m.name for m in after.secrets] == [m.name for m in before.secrets]
    assert cache.get(listing.STAMP_KEY).fresh_until == fresh_until > time.time()  # not stale


def test_a_write_stores_one_entry_not_the_whole_listing_and_every_process_sees_it(
    make_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a-secrets", NAME, "z-secrets"):
        make_secret(name, CANARY_DOC)
    listing.get_listing()
    stored = _spy_on_cache(monkeypatch, "set")
    listing.record_write(NAME, "d" * 32)
    created = dataclasses.replace(aws.describe("a-secrets").meta, name="new-secrets")
    listing.record_write("new-secrets", "e" * 32, meta=created)
    assert not [k for k in stored if k.startswith(listing.DATA_KEY)]  # not pickled again
    monkeypatch.setattr(listing, "_memo_base", None)  # as another worker process would see it
    monkeypatch.setattr(listing, "_memo", None)
    seen = listing.get_listing()
    assert next(m for m in seen.secrets if m.name == NAME).current_version == "d" * 32
    assert [m.name for m in seen.secrets] == ["a-secrets", NAME, "new-secrets", "z-secrets"]
    assert seen.listed == 4 and seen.revision == 2
    fresh = listing.get_listing(refresh=True)  # a new listing of AWS starts without the overlay
    assert fresh.revision == 0 and "new-secrets" not in [m.name for m in fresh.secrets]
    assert listing.get_listing().stamp == fresh.stamp


def test_a_created_secret_is_added_to_the_listing_with_one_describe_secret(
    make_secret: Any, calls: CallCounter
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    listing.get_listing()
    make_secret("b-secrets", CANARY_DOC, Description="made by the portal")
    calls.calls.clear()
    listing.record_write("b-secrets", aws.read_current("b-secrets").version_id)
    assert calls.calls[-1:] == ["DescribeSecret"] and "ListSecrets" not in calls.calls
    names = [m.name for m in listing.get_listing().secrets]
    assert names == ["a-secrets", "b-secrets"]
    assert listing.search(listing.get_listing(), "made by")[0].name == "b-secrets"


def test_grid_cells_show_the_values_hmac_and_post_their_cell_back(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    doc = {"dev": {'s"q': {"k<1>": "v1", "n": 5, "b": True}}, "main": {'s"q': {"k<1>": "v1"}}}
    make_secret(NAME, doc)
    client = as_user(engineer)
    html = _grid(client).content.decode()
    for value in ("v1", 5, True):
        assert documents.short(reads.fingerprint(value)) in html
    version = aws.read_current(NAME).version_id
    cells = [{"cell": unescape(c)} for c in re.findall(r'name="cell" value="([^"]*)"', html)]
    assert {c["cell"] for c in cells} == {
        json.dumps([env, 's"q', key])
        for env, key in (("dev", "k<1>"), ("dev", "n"), ("dev", "b"), ("main", "k<1>"))
    }
    response = client.post(
        reverse("secrets_admin:cell_reveal", args=[NAME]),
        {"version_id": version, **next(c for c in cells if '"n"' in c["cell"])},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK and ">5<" in response.content.decode()


def test_expanding_a_service_of_an_older_version_leaves_the_lists_summary_current(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any
) -> None:
    make_secret(NAME, _large_doc())
    client = as_user(engineer)
    old = aws.read_current(NAME).version_id
    new = "d" * 32
    sm.put_secret_value(
        SecretId=NAME,
        SecretString=json.dumps(_large_doc(services=41)),
        ClientRequestToken=new,
        VersionStages=["PORTAL-PENDING-TEST"],
    )
    sm.update_secret_version_stage(
        SecretId=NAME, VersionStage="AWSCURRENT", MoveToVersionId=new, RemoveFromVersionId=old
    )
    _grid(client)
    cache.clear()  # the older version is not cached: expanding it reads it
    response = client.get(
        reverse("secrets_admin:secret_detail", args=[NAME]),
        {"service": "svc39", "version": old},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK
    assert SecretSummary.objects.get(name=NAME).version_id == new


def test_a_secret_created_while_aws_is_listed_again_stays_listed_when_that_listing_ends(
    make_secret: Any,
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    listing.get_listing()
    fetch = listing._Fetch()  # a background refresh: its pages were read before the create
    assert fetch.step()
    make_secret("b-secrets", CANARY_DOC)
    listing.record_write("b-secrets", aws.read_current("b-secrets").version_id)
    assert "b-secrets" in [m.name for m in listing.get_listing().secrets]
    fetch.finish()
    names = [m.name for m in listing.get_listing().secrets]
    assert names == ["a-secrets", "b-secrets"]
    later = listing.get_listing(refresh=True)  # a listing that starts after the write lists it
    assert [m.name for m in later.secrets] == names and later.revision == 0
