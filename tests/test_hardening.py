"""Production refuses weak configuration, and bad input never becomes a 500 (ASVS 5.0 V13.1,
V13.4; the load balancer's view of the portal: health checks, HEAD, forwarded client addresses)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------------------------
# Bad input never becomes a 500


def test_unknown_host_header_gets_a_400_page(engineer: Any) -> None:
    """Django refuses the host in ``CommonMiddleware``, before the session and user are loaded:
    the 400 page renders for an anonymous visitor (and never as the signed-in one)."""
    client = Client()
    client.force_login(engineer)
    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"The request was malformed" in response.content
    assert b"erin-engineer" not in response.content
