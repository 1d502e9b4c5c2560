"""Everyday comforts around editing: the approvers' "waiting for me" count in the navigation,
and the audit log read as one row per action."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.urls import reverse

from .test_change_requests import MAIN_EDIT, propose
from .test_change_requests import secret as secret  # the fixture: a standard secret

WAITING = "waiting for me</span>"


def test_approvers_see_how_many_requests_wait_for_them_and_the_link_opens_on_them(
    secret: str, as_user: Any, engineer: Any, approver: Any, auditor: Any
) -> None:
    page = as_user(approver).get(reverse("secrets_admin:secret_list")).content.decode()
    assert WAITING not in page
    assert f'href="{reverse("secrets_admin:change_request_list")}?show=waiting"' in page
    waiting = propose(engineer, MAIN_EDIT)
    own = propose(approver, MAIN_EDIT)  # their own request does not wait for them
    page = as_user(approver).get(reverse("secrets_admin:secret_list")).content.decode()
    assert f'<span class="badge warn">1 {WAITING}' in page
    for other in (engineer, auditor):  # not approvers: no count, no query
        assert (
            WAITING not in as_user(other).get(reverse("secrets_admin:secret_list")).content.decode()
        )
    listing = as_user(approver).get(
        reverse("secrets_admin:change_request_list"), {"show": "waiting"}
    )
    assert listing.status_code == HTTPStatus.OK
    html = listing.content.decode()
    assert reverse("secrets_admin:change_request_detail", args=[waiting.pk]) in html
    assert reverse("secrets_admin:change_request_detail", args=[own.pk]) not in html
