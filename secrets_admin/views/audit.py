"""The auditor's screens: the log, filterable and paginated; one event; the
per-secret and per-user timelines (the log with a filter fixed); exports of the current filter
as CSV and JSON Lines, streamed; and the chain check. Everyone from auditor up (``VIEW``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from .. import audit, audit_anchors, permissions
from ..audit_export import EventFilter, export_csv, export_jsonl, one_row_per_action
from ..models import AuditChainHead, AuditEvent
from ..permissions import Action, require
from . import HtmxHttpRequest

_DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AuditFilterForm(forms.Form):
    """The log's filter. Fields fixed by a timeline are disabled (their value comes from the
    URL, never from the query string)."""

    secret = forms.CharField(required=False, max_length=512)
    environment = forms.CharField(required=False, max_length=255)
    service = forms.CharField(required=False, max_length=255)
    key = forms.CharField(required=False, max_length=255)
    actor = forms.CharField(required=False, max_length=254, label="Actor (username or e-mail)")
    action = forms.ChoiceField(
        required=False, choices=[("", "any"), *((a.value, a.label) for a in audit.AuditAction)]
    )
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any"), *((o.value, o.value) for o in audit.Outcome)]
    )
    since = forms.DateField(required=False, widget=_DATE, label="From (UTC)")
    until = forms.DateField(required=False, widget=_DATE, label="To (UTC)")
    # a timeline's fixed fields, matched exactly (carried into its exports)
    exact = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)

    def __init__(self, data: QueryDict, *, preset: dict[str, str] | None = None) -> None:
        super().__init__(data)
        self.preset = preset or {}
        for name, value in self.preset.items():
            self.fields[name].disabled = True
            self.fields[name].initial = value
        if self.preset:
            self.fields["exact"].disabled = True
            self.fields["exact"].initial = ",".join(self.preset)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def event_filter(self) -> EventFilter:
        """The filter; call after ``is_valid()``."""
        return EventFilter(**self.cleaned_data)


def _log(
    request: HtmxHttpRequest, *, preset: dict[str, str], heading: str, lead: str
) -> HttpResponse:
    form = AuditFilterForm(request.GET, preset=preset)
    page = None
    params: dict[str, str] = {}
    if form.is_valid():
        event_filter = form.event_filter()
        params = event_filter.as_params()
        events = permissions.visible_events(request.user, event_filter.events())
        if not event_filter.outcome:  # an attempt and its outcome read as one row
            events = one_row_per_action(events)
        events = events.order_by("-seq")
        page = Paginator(events, settings.PORTAL_AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    own_params = {k: v for k, v in params.items() if k not in preset and k != "exact"}
    context = {
        "form": form,
        "page": page,
        "heading": heading,
        "lead": lead,
        "export_params": params,
        "query": urlencode(own_params),
        "here": request.path,
    }
    if not (request.htmx and not request.htmx.boosted):
        return render(request, "secrets_admin/audit_log.html", context)
    response = render(request, "secrets_admin/audit_log.html#audit-table", context)
    # The address bar shows the filter without its empty fields (a link worth sharing).
    if page is not None and page.number > 1:
        own_params["page"] = str(page.number)
    return push_url(response, f"{request.path}?{urlencode(own_params)}".rstrip("?"))


def _log_view(*, preset: str, heading: str, lead: str, doc: str) -> Callable[..., HttpResponse]:
    """A view of the log: every event, or those of the URL's one secret or person (``preset``
    names the filter field the URL's value sets; ``heading`` gets it in ``{}``)."""

    @require_GET
    @never_cache
    @require(Action.VIEW)
    def view(request: HtmxHttpRequest, **url_value: str) -> HttpResponse:
        value = next(iter(url_value.values()), "")
        return _log(
            request,
            preset={preset: value} if preset else {},
            heading=heading.format(value),
            lead=lead,
        )

    view.__doc__ = doc
    return view


audit_log = _log_view(
    preset="",
    heading="Audit log",
    lead="Who changed or saw what, when and from where. Newest first; times in UTC.",
    doc="Every event, newest first, filtered by the query string (see AuditFilterForm).",
)
audit_secret_timeline = _log_view(
    preset="secret",
    heading="Timeline of {}",
    lead="Every recorded action on this secret, newest first.",
    doc="The log of one secret.",
)
audit_user_timeline = _log_view(
    preset="actor",
    heading="Timeline of {}",
    lead="Everything this person did through the portal, newest first.",
    doc="The log of one person (by username or e-mail).",
)


@require_GET
@never_cache
@require(Action.VIEW)
def audit_event_detail(request: HttpRequest, seq: int) -> HttpResponse:
    """One event with every field, its chain link, and the attempt and outcomes it belongs to."""
    event = AuditEvent.objects.filter(seq=seq).first()
    if event is None:
        raise Http404("No such event")
    attempt_seq = event.attempt or (event.seq if event.outcome == audit.Outcome.ATTEMPTED else None)
    related = (
        AuditEvent.objects.filter(seq=attempt_seq) | AuditEvent.objects.filter(attempt=attempt_seq)
        if attempt_seq
        else AuditEvent.objects.none()
    )
    previous = AuditEvent.objects.filter(seq=event.seq - 1).only("hash").first()
    expected_prev = previous.hash if previous else (audit.GENESIS if event.seq == 1 else None)
    context = {
        "event": event,
        "related": related.exclude(seq=event.seq).order_by("seq"),
        "detail_json": json.dumps(event.detail, indent=2, sort_keys=True, ensure_ascii=False),
        "hash_matches": audit.compute_hash(event) == event.hash,
        "follows_previous": event.prev_hash == expected_prev,
        "has_next": AuditEvent.objects.filter(seq=event.seq + 1).exists(),
    }
    return render(request, "secrets_admin/audit_event_detail.html", context)


EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", export_csv),
    "jsonl": ("application/x-ndjson; charset=utf-8", export_jsonl),
}


@require_POST
@never_cache
@require(Action.VIEW)
def audit_export(request: HttpRequest) -> HttpResponseBase:
    """Stream the events matching the posted filter as CSV or JSON Lines (``format``).

    The export is recorded first (fail closed: nothing is exported when it cannot be) with its
    filter and the last event it covers; the events are read in chunks, so memory stays flat
    however many there are.
    """
    form = AuditFilterForm(request.POST)
    export_format = request.POST.get("format", "")
    if export_format not in EXPORT_FORMATS or not form.is_valid():
        return HttpResponse(
            "The export request is incomplete or its filter is invalid. Go back to the log, "
            "check the filter and try again.",
            status=HTTPStatus.BAD_REQUEST,
            content_type="text/plain",
        )
    event_filter = form.event_filter()
    head = AuditChainHead.objects.filter(pk=1).first()
    through = head.seq if head else 0
    try:
        audit.record(
            audit.AuditAction.AUDIT_EXPORT,
            context=audit.Context.from_request(request),
            detail={
                "format": export_format,
                "filter": event_filter.as_params(),
                "through_seq": through,
            },
        )
    except audit.AuditUnavailable as exc:
        return HttpResponse(
            exc.message, status=HTTPStatus.SERVICE_UNAVAILABLE, content_type="text/plain"
        )
    content_type, export = EXPORT_FORMATS[export_format]
    response = StreamingHttpResponse(
        export(
            permissions.visible_events(request.user, event_filter.events()).filter(seq__lte=through)
        ),
        content_type=content_type,
    )
    response["Content-Disposition"] = (
        f'attachment; filename="audit-through-{through}.{export_format}"'
    )
    return response


@require_POST
@never_cache
@require(Action.VIEW)
def audit_verify(request: HtmxHttpRequest) -> HttpResponse:
    """Check the whole chain now against the signed anchors (``audit_anchors``), record the
    check, and show the result with the public key that verifies the anchors."""
    result = audit_anchors.verify_with_anchors()
    context: dict[str, Any] = {"result": result, "proof": audit_anchors.describe_configuration()}
    status = HTTPStatus.OK
    try:
        audit.record(
            audit.AuditAction.AUDIT_VERIFY,
            context=audit.Context.from_request(request),
            outcome=audit.Outcome.SUCCEEDED if result.ok else audit.Outcome.FAILED,
            detail=result.as_detail(),
        )
    except audit.AuditUnavailable as exc:
        context["error"] = exc.message
        status = HTTPStatus.SERVICE_UNAVAILABLE
    template = "secrets_admin/audit_verify.html"
    if request.htmx:
        template += "#audit-verify"
    return render(request, template, context, status=status)
