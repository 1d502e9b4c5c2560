"""Optional error reporting to Sentry (the ``sentry`` extra; off unless ``SENTRY_DSN`` is set).

What is sent is scrubbed on the way out (:func:`before_send`), because an error report is
exactly where a value would slip out of the process (values live only in Secrets Manager):

* the request keeps its method and URL (which never hold a value) - its body, cookies, query
  data, headers and environment are dropped;
* stack frames keep file, line, function and source lines - their local variables are dropped
  (and never collected: ``include_local_variables=False``);
* an exception keeps its type - its message is withheld, as it can quote what the code was
  handling (``int("<value>")``);
* log messages keep their template, not their arguments; ``extra`` data and breadcrumbs' data
  are dropped; no personal data is attached (``data_collection``: no user info).
"""

from __future__ import annotations

from typing import Any

WITHHELD = "[withheld: may quote a value]"
#: Request fields Sentry may keep (everything else, e.g. data, cookies, headers, env, is dropped).
REQUEST_KEEP = ("method", "url")


def _scrub_stacktrace(holder: dict[str, Any]) -> None:
    for frame in (holder.get("stacktrace") or {}).get("frames") or []:
        frame.pop("vars", None)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Sentry's ``before_send``: the event without request bodies, cookies, local variables,
    exception messages, log arguments or extra data (see the module docstring)."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {k: request[k] for k in REQUEST_KEEP if k in request}
    for exception in (event.get("exception") or {}).get("values") or []:
        if exception.get("value"):
            exception["value"] = WITHHELD
        _scrub_stacktrace(exception)
    for thread in (event.get("threads") or {}).get("values") or []:
        _scrub_stacktrace(thread)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        logentry.pop("params", None)
        logentry.pop("formatted", None)
    event.pop("extra", None)
    crumbs = event.get("breadcrumbs")
    for crumb in (crumbs.get("values") if isinstance(crumbs, dict) else crumbs) or []:
        crumb.pop("data", None)
    return event


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Breadcrumbs keep category, level and message; their data (SQL parameters, HTTP bodies,
    log ``extra``) is dropped."""
    crumb.pop("data", None)
    return crumb


def init(dsn: str, *, environment: str, release: str = "", transport: Any = None) -> None:
    """Start the Sentry SDK with the Django integration and :func:`before_send`.

    ``transport`` replaces the HTTP transport (the tests capture events with it). Raises
    ``ImportError`` when the ``sentry`` extra is not installed.
    """
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": environment,
        "integrations": [DjangoIntegration()],
        # No user identity, request bodies, SQL parameters or frame variables are collected.
        "data_collection": {
            "user_info": False,
            "http_bodies": [],
            "database_query_data": False,
            "stack_frame_variables": False,
        },
        "include_local_variables": False,
        "max_request_body_size": "never",
        "traces_sample_rate": 0.0,
        "before_send": before_send,
        "before_breadcrumb": before_breadcrumb,
    }
    if release:
        options["release"] = release
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
