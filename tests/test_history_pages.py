"""The history screen: versions newest first, 25 to a page, each with its author beside its date."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from secrets_admin import audit, aws
from secrets_admin.changes import editor, protocol
from secrets_admin.changesets import Edit
from secrets_admin.history import HISTORY_PAGE_SIZE

from .conftest import STANDARD_DOC

pytestmark = pytest.mark.django_db

NAME = "a-secrets"
VERSION_CELL = re.compile(r"<tr[^>]*>\s*<td><code>([^<]+)</code></td>")


def _save_versions(user: Any, count: int) -> list[str]:
    """``count`` saves through the write protocol; their version ids, oldest first."""
    made = []
    for n in range(count):
        base = aws.read_current(NAME).version_id
        made.append(
            editor.secret_save_changes(
                name=NAME,
                base_version_id=base,
                changeset=[Edit("set", "dev", "stripe", "public_key", f"pk_{n}")],
                context=audit.Context(user=user),
                change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base),
            ).new_version_id
        )
    return made


def _history(client: Any, **query: Any) -> str:
    response = client.get(reverse("secrets_admin:secret_history", args=[NAME]), query)
    assert response.status_code == HTTPStatus.OK
    return str(response.content.decode())


def test_history_is_paginated_newest_first(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    first = aws.read_current(NAME).version_id
    saved = _save_versions(engineer, HISTORY_PAGE_SIZE + 4)
    newest_first = [*reversed(saved), first]
    client = as_user(auditor)

    page_one = _history(client)
    assert VERSION_CELL.findall(page_one) == newest_first[:HISTORY_PAGE_SIZE]
    assert "Page 1 of 2 (30 versions)" in page_one and 'href="?page=2"' in page_one
    # the last row's "one before" is the first row of the next page
    assert f"a={newest_first[HISTORY_PAGE_SIZE]}&amp;b={newest_first[HISTORY_PAGE_SIZE - 1]}" in (
        page_one
    )

    page_two = _history(client, page=2)
    assert VERSION_CELL.findall(page_two) == newest_first[HISTORY_PAGE_SIZE:]
    assert 'href="?page=1"' in page_two and "Older" not in page_two
    past_the_end = _history(client, page="999")
    assert VERSION_CELL.findall(past_the_end) == newest_first[HISTORY_PAGE_SIZE:]
    assert VERSION_CELL.findall(_history(client, page="x")) == newest_first[:HISTORY_PAGE_SIZE]


def test_each_version_shows_its_author_beside_its_date(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    (saved,) = _save_versions(engineer, 1)
    html = _history(as_user(auditor))
    row = html[html.index(f"<code>{saved}</code>") :]
    created_by = row[
        row.index('<td class="created-by">') : row.index("</td>", row.index("created-by"))
    ]
    assert re.search(r"</time> by <span class=\"author\">erin-engineer</span>$", created_by)
    first_row = html[html.rindex("<tr") :]
    assert "outside the portal" in first_row  # CreateSecret's version: no author to show


def test_history_costs_the_same_queries_for_one_version_or_a_full_page(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    client = as_user(auditor)
    _history(client)  # warm the per-process caches (caller identity, listing)
    with CaptureQueriesContext(connection) as one_version:
        _history(client)
    _save_versions(engineer, HISTORY_PAGE_SIZE)
    with CaptureQueriesContext(connection) as full_page:
        _history(client)
    assert len(full_page) == len(one_version)
