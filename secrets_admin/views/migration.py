"""The migration wizard (admins): legacy secrets and ``.env`` files into one unified secret, and
the explicit "schedule deletion" of the legacy secrets afterwards (the standard's migration
checklist).

One URL per step: ``secret_migrate`` (GET: choose sources and map them; POST: back to the
choices), ``secret_migrate_preview`` (the plan per cell: fingerprints and types, never a value),
``secret_migrate_apply`` (create or update through the normal path).

Where the ``.env`` content lives between steps: only in the POSTed forms. The preview page
carries it back in a hidden field (it is the person's own input, like the editor's review page
carrying typed values; responses are ``no-store``); it is never put in the session, the cache or
the database. Legacy values are never sent to the browser: the final step re-reads them from
AWS and refuses to write when the plan's digest differs from the reviewed one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from .. import audit, aws, errors, forms
from ..changes import lifecycle, protocol
from ..changes import migration as wizard
from ..permissions import Action, require

TEMPLATE = "secrets_admin/secret_migrate.html"


def _choose(
    request: HttpRequest,
    migration: forms.MigrationRequest | None = None,
    *,
    error: str = "",
    status: int = HTTPStatus.OK,
) -> HttpResponse:
    try:
        candidates = wizard.migration_candidates()
    except errors.PortalError as exc:
        candidates, error = [], exc.message
    chosen = {s.name: s for s in migration.sources} if migration else {}
    rows = [
        (
            c,
            c.name in chosen,
            chosen[c.name].environment if c.name in chosen else c.environment,
            chosen[c.name].service if c.name in chosen else c.service,
        )
        for c in candidates
    ]
    suggested = next((c.repo for c in candidates if c.repo), "")
    return render(
        request,
        TEMPLATE,
        {
            "step": "choose",
            "rows": rows,
            "migration": migration,
            "repo": migration.repo if migration else suggested,
            "suffix": settings.PORTAL_SECRET_SUFFIX,
            "error": error,
        },
        status=status,
    )


def _posted(request: HttpRequest) -> forms.MigrationRequest | HttpResponse:
    """The posted wizard fields, or the choices again with the reason (400)."""
    try:
        return forms.migration_request(request.POST, request.FILES)
    except forms.FormProblem as exc:
        return _choose(request, error=exc.message, status=HTTPStatus.BAD_REQUEST)


@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters()
@require(Action.ADMINISTER_SECRETS)
def secret_migrate(request: HttpRequest) -> HttpResponse:
    """Choose the sources (GET), or choose again with the posted choices (POST, "back")."""
    if request.method == "GET":
        return _choose(request)
    migration = _posted(request)
    if isinstance(migration, HttpResponse):
        return migration
    return _choose(request, migration)


def _migration_step(
    view: Callable[[HttpRequest, forms.MigrationRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """A POST step of the wizard after the choices (admins; never cached; the posted fields kept
    out of error reports): ``view`` gets the posted migration, and bad input shows the choices
    again with the reason (400)."""

    @require_POST
    @never_cache
    @sensitive_post_parameters()
    @require(Action.ADMINISTER_SECRETS)
    @wraps(view)
    def step(request: HttpRequest) -> HttpResponse:
        migration = _posted(request)
        if isinstance(migration, HttpResponse):
            return migration
        return view(request, migration)

    return step


@_migration_step
def secret_migrate_preview(request: HttpRequest, migration: forms.MigrationRequest) -> HttpResponse:
    """The plan of the posted migration (nothing written), with a confirm form to apply it."""
    try:
        plan = wizard.migration_preview(
            **migration.plan_arguments(), context=audit.Context.from_request(request)
        )
    except errors.PortalError as exc:
        return _choose(request, migration, error=exc.message, status=exc.status)
    return render(
        request,
        TEMPLATE,
        {
            "step": "preview",
            "plan": plan,
            "env_file": wizard.ENV_FILE,
            "fields": migration.fields(),
            "change_id": protocol.new_change_id(
                user=request.user, name=plan.target, base_version_id=plan.base_version_id
            ),
        },
    )


@_migration_step
def secret_migrate_apply(request: HttpRequest, migration: forms.MigrationRequest) -> HttpResponse:
    """Apply the reviewed plan (re-planned on the server and checked against its digest)."""
    try:
        result = wizard.secret_migrate(
            **migration.plan_arguments(),
            digest=request.POST.get("digest", ""),
            context=audit.Context.from_request(request),
            change_id=request.POST.get("change_id", ""),
        )
    except errors.PortalError as exc:
        return _choose(request, migration, error=exc.message, status=HTTPStatus.BAD_REQUEST)
    messages.success(
        request,
        f"{'Created' if result.created else 'Updated'} {result.name} (version "
        f"{result.version_id}): {result.written} cell{'s' if result.written != 1 else ''} "
        "migrated. The legacy secrets are untouched.",
    )
    return render(
        request,
        TEMPLATE,
        {
            "step": "done",
            "result": result,
            "windows": range(aws.RECOVERY_WINDOW_DAYS[0], aws.RECOVERY_WINDOW_DAYS[1] + 1),
        },
    )


@require_POST
@never_cache
@require(Action.ADMINISTER_SECRETS)
def legacy_secret_schedule_deletion(request: HttpRequest) -> HttpResponse:
    """Schedule a legacy secret's deletion (POST ``name``, ``recovery_days`` 7-30; admins)."""
    name = request.POST.get("name", "")[:512]
    try:
        days = int(request.POST.get("recovery_days", ""))
    except ValueError:
        days = 0
    try:
        when = lifecycle.legacy_secret_schedule_deletion(
            name=name, recovery_days=days, context=audit.Context.from_request(request)
        )
    except errors.PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{name} is scheduled for deletion on {when:%Y-%m-%d %H:%M} UTC ({days} days to "
            "restore it).",
        )
    return redirect("secrets_admin:secret_migrate")
