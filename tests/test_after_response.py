"""Derived records of a save are written after the response went out, and still written."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from secrets_admin import after_response

# closing a response sends request_finished, on which Django also tidies the connections
pytestmark = pytest.mark.django_db


def test_deferred_work_runs_when_the_server_closes_the_response_not_before() -> None:
    done: list[str] = []

    def view(request: HttpRequest) -> HttpResponse:
        after_response.defer(lambda: done.append("index"))
        return HttpResponse("saved")

    response = after_response.AfterResponseMiddleware(view)(RequestFactory().get("/"))
    assert done == []  # the body can go out first
    response.close()  # what a WSGI server does once the body is sent
    assert done == ["index"]
    response.close()
    assert done == ["index"]  # once


def test_outside_a_request_the_work_runs_at_once_and_a_failure_does_not_stop_the_rest(
    caplog: Any,
) -> None:
    done: list[str] = []
    after_response.defer(lambda: done.append("now"))
    assert done == ["now"]

    def view(request: HttpRequest) -> HttpResponse:
        after_response.defer(lambda: 1 / 0)  # type: ignore[func-returns-value]
        after_response.defer(lambda: done.append("after the failure"))
        return HttpResponse()

    after_response.AfterResponseMiddleware(view)(RequestFactory().get("/")).close()
    assert done == ["now", "after the failure"]
    assert "deferred until after the response failed" in caplog.text


def test_a_save_through_the_editor_leaves_the_index_and_summary_current(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    from django.urls import reverse

    from secrets_admin import aws
    from secrets_admin.models import IndexedSecret, SecretSummary

    from .portal_flows import save_cells

    make_secret("app-secrets", {"dev": {"api": {"token": "old"}}})
    client = as_user(engineer)
    client.get(reverse("secrets_admin:secret_detail", args=["app-secrets"]))
    save_cells(client, "app-secrets", {("dev", "api", "token"): "new"})
    current = aws.read_current("app-secrets").version_id
    assert SecretSummary.objects.get(name="app-secrets").version_id == current
    assert IndexedSecret.objects.get(name="app-secrets").version_id == current


@pytest.mark.django_db(transaction=True)
def test_after_the_deferred_work_a_connection_past_its_age_is_closed() -> None:
    import time

    from django.db import connection

    from secrets_admin.models import SecretSummary

    def view(request: HttpRequest) -> HttpResponse:
        after_response.defer(lambda: SecretSummary.objects.exists() and None)
        return HttpResponse()

    response = after_response.AfterResponseMiddleware(view)(RequestFactory().get("/"))
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE has run out
    response.close()  # Django's own tidy-up ran first; the work reopened the connection
    assert connection.connection is None
