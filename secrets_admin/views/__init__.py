"""Thin function views grouped by screen."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """``HttpRequest`` with django-htmx's ``request.htmx`` (for type checking)."""

    htmx: HtmxDetails
