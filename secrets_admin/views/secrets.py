"""Screens for the list of unified secrets, one secret's grid, and revealing one cell."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from .. import audit, aws, errors, grid, listing, permissions, ratelimit, reads
from ..hygiene.reuse import reuse_notes
from ..models import ChangeRequest
from ..permissions import Action, require, visible_secret_names
from . import HtmxHttpRequest
from .errors import error_response


@require_GET
@never_cache
@require(Action.VIEW)
def secret_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every ``*-secrets`` secret with its badges; search (``q``) and paging (``page``).

    Served from the cached listing (stale ones too, refreshed in the background); before the
    first listing of a large account ends, the page shows its progress and fills in by itself.
    """
    try:
        state = listing.listing_state()
    except errors.PortalError as exc:
        return error_response(request, exc)
    query = request.GET.get("q", "")[:200]
    page_number = request.GET.get("page", "")
    context: dict[str, Any] = {
        "state": state,
        "query": query,
        "suffix": settings.PORTAL_SECRET_SUFFIX,
        "table_query": urlencode({"q": query, **({"page": page_number} if page_number else {})}),
    }
    data = state.listing
    if data is not None:
        # Outside the person's scope a secret does not exist: not listed, searched or counted.
        visible = permissions.visible_secrets(request.user, data.secrets)
        matches = permissions.visible_secrets(request.user, listing.search(data, query))
        # editing: secrets whose services or keys match, from the recorded structure summaries
        seen = {m.name: m for m in visible}
        key_matches = [k for k in listing.search_keys(data, query) if k.name in seen]
        found = {m.name for m in matches}
        matches += [seen[k.name] for k in key_matches if k.name not in found]
        context["key_matches"] = key_matches
        page = Paginator(matches, settings.PORTAL_LIST_PAGE_SIZE).get_page(page_number)
        summaries = listing.summaries_for([m.name for m in page.object_list])
        context["rows"] = [
            listing.row_html(meta, summaries.get(meta.name)) for meta in page.object_list
        ]
        context |= {"page": page, "total": len(visible), "matched": len(matches)}
    context["account_counts"] = permissions.sees_every_secret(request.user)
    template = "secrets_admin/secret_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#secret-table"
    return render(request, template, context)


@require_GET
@never_cache
@require(Action.VIEW)
def secret_list_status(request: HtmxHttpRequest) -> HttpResponse:
    """The list's status line (polled by htmx while AWS is being listed).

    ``shown`` is the stamp of the listing on the user's page; when a newer listing exists the
    response triggers ``listing-updated``, on which the table reloads itself.
    """
    try:
        state = listing.listing_state(retry_failed=False)
    except aws.AwsError as exc:
        state = listing.ListingState(None, progress=listing.Progress(0.0, error=exc.message))
    response = render(
        request,
        "secrets_admin/secret_list.html#secret-list-status",
        {"state": state, "account_counts": permissions.sees_every_secret(request.user)},
    )
    shown = request.GET.get("shown", "")
    if state.listing is not None and shown != state.listing.stamp:
        trigger_client_event(response, "listing-updated")
    return response


@require_POST
@require(Action.VIEW)
def secret_list_refresh(request: HttpRequest) -> HttpResponse:
    """List AWS again in the background; the list keeps showing the old listing until then."""
    listing.invalidate()
    listing.refresh_in_background()
    return redirect("secrets_admin:secret_list")


@require_GET
@never_cache
@require(Action.VIEW)
def secret_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """The environment x (service, key) grid of one secret, every value masked on the server.

    One ``DescribeSecret``; a version seen before is served from the shared cache without
    ``GetSecretValue`` (:mod:`secrets_admin.grid`). ``service`` and ``version`` (GET) expand a
    collapsed service of a large grid: with htmx only that service's rows of that version come
    back; without, the page opens with it shown.
    """
    reveal_url = reverse("secrets_admin:cell_reveal", args=[name])
    user = request.user

    def may_reveal(environment: str) -> bool:
        return permissions.can(user, Action.REVEAL, name, environment)

    service = request.GET.get("service", "")[:512]
    version = request.GET.get("version", "")[:64]
    try:
        if service and version and request.htmx:
            html = grid.service_rows(
                name, version, service, can_reveal=may_reveal, reveal_url=reveal_url
            )
            if html is None:
                raise errors.NotFound("That service is not in that version of this secret.")
            return HttpResponse(html)
        page = grid.open_grid(name, can_reveal=may_reveal, reveal_url=reveal_url)
        if service and page.version_id:
            expanded = grid.expanded_rows_html(
                name, page.version_id, service, can_reveal=may_reveal, reveal_url=reveal_url
            )
            page.rows_html = expanded if expanded is not None else page.rows_html
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    reuse = (
        reuse_notes(
            name=name, version_id=page.version_id, visible=visible_secret_names(request.user)
        )
        if page.version_id
        else []
    )
    return render(
        request,
        "secrets_admin/secret_detail.html",
        {
            "secret": page,
            "reuse": reuse,
            "reveal_url": reveal_url,
            "reveal_seconds": settings.PORTAL_REVEAL_SECONDS,
            "pending_requests": ChangeRequest.objects.filter(
                secret=name, status=ChangeRequest.Status.OPEN
            ),
            **_access_context(request, name, page.environments),
        },
    )


def _access_context(request: HttpRequest, name: str, environments: list[str]) -> dict[str, Any]:
    """What this person may do on this secret (per environment) and who else may: the grid
    shows Reveal only where a reveal would be allowed, and a reason field where one is asked."""
    user = request.user
    reveal_envs = [e for e in environments if permissions.can(user, Action.REVEAL, name, e)]
    return {
        "can_reveal": bool(reveal_envs),
        "reveal_environments": reveal_envs,
        "reason_environments": [e for e in reveal_envs if permissions.reveal_needs_reason(e)],
        "access_summary": permissions.access_summary(name, environments),
    }


def _reveal_fields(request: HttpRequest) -> dict[str, str]:
    """``version_id``, ``environment``, ``service``, ``key`` of a reveal: the cell comes either
    as three fields or, from the grid's buttons, as ``cell`` = JSON ``[environment, service,
    key]``. Missing or malformed parts are empty strings (then the request is refused as
    incomplete)."""
    fields = {k: request.POST.get(k, "") for k in ("version_id", "environment", "service", "key")}
    cell = request.POST.get("cell", "")
    if cell:
        try:
            parts = json.loads(cell)
        except ValueError:
            parts = None
        ok = isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)
        fields["environment"], fields["service"], fields["key"] = parts if ok else ("", "", "")
    return fields


@require_POST
@never_cache
@sensitive_variables("value")
@require(Action.REVEAL)
def cell_reveal(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Return one cell's value (POST: version, environment, service, key), audited first.

    The response carries ``Cache-Control: no-store`` (ASVS 5.0 14.3.2). With htmx only the cell
    fragment comes back; without JavaScript a small page shows the value. More than
    ``PORTAL_REVEAL_RATE`` reveals by one person get a 429 with ``Retry-After``.
    """
    template = "secrets_admin/cell_reveal.html"
    if request.htmx:
        template += "#cell-value"
    limited = ratelimit.consume("reveal", str(request.user.pk), ratelimit.reveal_rate())
    if limited:
        response = render(
            request, template, {"error": limited.message}, status=HTTPStatus.TOO_MANY_REQUESTS
        )
        response["Retry-After"] = str(limited.retry_after)
        return response
    fields = _reveal_fields(request)
    if not all(fields.values()) or len(fields["version_id"]) > 64:
        return render(
            request,
            template,
            {"error": "The reveal request is incomplete. Reload the page and try again."},
            status=HTTPStatus.BAD_REQUEST,
        )
    context = {"name": name, **fields, "reveal_seconds": settings.PORTAL_REVEAL_SECONDS}
    status = HTTPStatus.OK
    reason = request.POST.get("reason", "").strip()
    refusal = permissions.reveal_refusal(request.user, name, fields["environment"], reason)
    if isinstance(refusal, errors.PortalError):
        return error_response(request, refusal, template=template, **context)
    try:
        value = reads.cell_reveal(
            name=name, context=audit.Context.from_request(request), reason=reason, **fields
        )
        context["value"] = value
    except errors.PortalError as exc:
        return error_response(request, exc, template=template, **context)
    return render(request, template, context, status=status)
