"""Log lines operators can use, and that never carry a secret value.

Per request, one line on logger ``portal.request``: request id, user, route (the URL pattern's
name, never the path), method, status, duration in milliseconds and the AWS calls the request
made (counted by a botocore event hook on every client the gateway creates:
:func:`count_aws_calls`). Per audit event, one line on logger ``portal.audit`` once the event is
committed: its sequence number, action, outcome, actor, secret and cell names, never a value.

Production (neither ``PORTAL_DEMO`` nor ``PORTAL_TESTING``, or ``PORTAL_LOG_FORMAT=json``)
writes one JSON object per line to stdout; the demo and the tests write readable text.

Tracebacks: Python's ``logging`` renders no local variables, but an exception's *message* can
quote whatever the code was handling (``int("<value>")`` -> ``invalid literal for int() ...:
'<value>'``). So both formats render a traceback as exception types and frames (file, line,
function) only, never the message; Django's expected 4xx (403, 404, ...) lose their traceback
altogether. The fields of a JSON line are an allow-list: Django's ``request`` object and any
other ``extra`` never reach it.
"""

from __future__ import annotations

import contextvars
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from pythonjsonlogger.json import JsonFormatter

#: A boto3 client (typed by boto3-stubs at the call site).
_Client = TypeVar("_Client")

#: The request being served by this thread (for the request id of audit lines and AWS counts).
_request: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "portal_request", default=None
)

#: Fields a JSON line may carry besides timestamp, level, logger and message.
FIELDS = (
    "request_id",
    "user",
    "route",
    "method",
    "status",
    "duration_ms",
    "aws_calls",
    "aws_operations",
    "seq",
    "action",
    "outcome",
    "actor",
    "secret",
    "environment",
    "service",
    "key",
    "change_request",
    "error_code",
    "exc_type",
    "traceback",
)


class RequestRecord:
    """What one request has done so far: its id and the AWS calls made (``Service.Operation``)."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.aws_calls: list[str] = []

    @property
    def request_id(self) -> str:
        return str(getattr(self.request, "request_id", ""))


def current() -> RequestRecord | None:
    """The request this thread is serving, or ``None`` (a management command, a thread)."""
    return _request.get()


# --------------------------------------------------------------------------------------------
# AWS calls (botocore events)


#: Called with (service, operation, error code or "") after every AWS call; metrics listen here.
aws_call_listeners: list[Callable[[str, str, str], None]] = []


def _after_call(event_name: str, **kwargs: Any) -> None:
    # event_name: "after-call.<service-id>.<Operation>" or "after-call-error.<service-id>.<Op>"
    _, service, operation = event_name.split(".", 2)
    if "exception" in kwargs:
        code = type(kwargs["exception"]).__name__
    else:
        parsed = kwargs.get("parsed") or {}
        http = kwargs.get("http_response")
        failed = http is not None and getattr(http, "status_code", 200) >= 300
        code = str(parsed.get("Error", {}).get("Code", "Unknown")) if failed else ""
    record = _request.get()
    if record is not None:
        record.aws_calls.append(operation)
    for listener in aws_call_listeners:
        listener(service, operation, code)


def count_aws_calls(client: _Client) -> _Client:
    """Register the counting hook on a boto3 client's events; returns the client.

    Every API call fires ``after-call`` (a response, success or AWS error) or
    ``after-call-error`` (no response: connection failure, timeout), once per call after
    botocore's retries.
    """
    events = client.meta.events  # type: ignore[attr-defined]  # every boto3 client has meta
    events.register("after-call", _after_call)
    events.register("after-call-error", _after_call)
    return client


# --------------------------------------------------------------------------------------------
# The request line


request_log = logging.getLogger("portal.request")
audit_log = logging.getLogger("portal.audit")
#: Called with (route, status, seconds) after every request; metrics listen here.
request_listeners: list[Callable[[str, int, float], None]] = []


def route_of(request: HttpRequest) -> str:
    """The URL pattern's name (``secrets_admin:secret_detail``), never the path (which names a
    secret); ``unmatched`` when no pattern matches. A request answered before URL resolution
    (the ``/healthz`` probe, a refused host) is resolved here for its name."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    return str(match.view_name or match.route)


class RequestLogMiddleware:
    """One ``portal.request`` line per request (outermost middleware, so it times everything)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        record = RequestRecord(request)
        token = _request.set(record)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(token)
        seconds = time.perf_counter() - started
        route = route_of(request)
        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else ""
        fields = {
            "request_id": record.request_id,
            "user": username,
            "route": route,
            "method": request.method or "",
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
            "aws_calls": len(record.aws_calls),
            "aws_operations": ",".join(record.aws_calls),
        }
        request_log.info(
            "%s %s %s %sms aws=%s user=%s id=%s",
            fields["method"],
            route,
            response.status_code,
            fields["duration_ms"],
            fields["aws_calls"],
            username or "-",
            record.request_id,
            extra=fields,
        )
        for listener in request_listeners:
            listener(route, response.status_code, seconds)
        return response


def log_audit_event(event: Any, *, request_id: str) -> None:
    """One ``portal.audit`` line for a committed :class:`~secrets_admin.models.AuditEvent`,
    made by the request ``request_id`` (empty outside a request)."""
    fields = {
        "request_id": request_id,
        "seq": event.seq,
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor_username,
        "secret": event.secret,
        "environment": event.environment,
        "service": event.service,
        "key": event.key,
        "change_request": event.change_request,
        "error_code": event.error_code,
    }
    audit_log.info(
        "audit #%s %s %s by %s on %s",
        event.seq,
        event.action,
        event.outcome or "-",
        event.actor_username or "-",
        event.secret or "-",
        extra=fields,
    )


# --------------------------------------------------------------------------------------------
# Formatting


def safe_traceback(exc_info: Any) -> tuple[str, str]:
    """``(exception type, frames)`` of ``exc_info``: types and ``file:line in function`` of
    every frame, chained exceptions included; never a message, a source line or a local."""
    _, exc, _ = exc_info
    blocks: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.extract_tb(exc.__traceback__)
        lines = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
        blocks.append("\n".join(["Traceback (most recent call last):", *lines, _type(exc)]))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return _type(exc_info[1]), "\n\nwhile handling or caused by:\n".join(reversed(blocks))


def _type(exc: BaseException | None) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}" if exc is not None else ""


class TextFormatter(logging.Formatter):
    """Readable lines for the demo and the tests, with :func:`safe_traceback` tracebacks."""

    def formatException(self, ei: Any) -> str:
        return safe_traceback(ei)[1] + " (message withheld: it may quote a value)"

    def formatStack(self, stack_info: str) -> str:
        return ""  # a stack dump shows source lines only, but keep log lines short


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and the
    :data:`FIELDS` a record carries; a traceback as ``exc_type`` + ``traceback``. Times are UTC."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        log_data["time"] = f"{utc}.{int(record.msecs):03d}Z"
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        for name in FIELDS:
            if name in record.__dict__:
                log_data[name] = record.__dict__[name]
        status = record.__dict__.get("status_code")
        if isinstance(status, int):
            log_data.setdefault("status", status)
        if record.exc_info and record.exc_info[1] is not None:
            log_data["exc_type"], log_data["traceback"] = safe_traceback(record.exc_info)

    def formatException(self, ei: Any) -> str:  # the traceback is in add_fields
        return ""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data.pop("exc_info", None)
        return log_data


class ExpectedClientErrors(logging.Filter):
    """Drop the traceback Django attaches to its ``django.request`` warnings for 4xx responses
    (``PermissionDenied``, ``Http404``, ...): an expected refusal is no crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = record.__dict__.get("status_code")
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True


def logging_config(*, json_lines: bool, level: str) -> dict[str, Any]:
    """Django's ``LOGGING`` for the portal: JSON lines on stdout or readable text on stderr."""
    formatter = (
        {"()": JsonLineFormatter}
        if json_lines
        else {"()": TextFormatter, "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"expected_client_errors": {"()": ExpectedClientErrors}},
        "formatters": {"portal": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "portal",
                "filters": ["expected_client_errors"],
                "stream": "ext://sys.stdout" if json_lines else "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Our request line replaces Django's development-server access line.
            "django.server": {"level": "WARNING"},
            "botocore": {"level": "WARNING"},
            "boto3": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            "werkzeug": {"level": "WARNING"},
        },
    }
