"""The migration wizard (admins): legacy secrets and ``.env`` files into one unified secret, and
the explicit "schedule deletion" of the legacy secrets afterwards (issue 7, part 5).

Steps, all on ``secret_migrate``: GET (choose sources and map them), POST ``step=preview``
(the plan per cell: fingerprints and types, never a value), POST ``step=apply`` (create or
update through the normal path), POST ``step=choose`` (back to the choices).

Where the ``.env`` content lives between steps: only in the POSTed forms. The preview page
carries it back in a hidden field (it is the person's own input, like the editor's review page
carrying typed values; responses are ``no-store``); it is never put in the session, the cache or
the database. Legacy values are never sent to the browser: the final step re-reads them from
AWS and refuses to write when the plan's digest differs from the reviewed one.
"""

from __future__ import annotations

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
    except aws.AwsError as exc:
        candidates, error = [], exc.message
    chosen = {s.name: s for s in migration.sources} if migration else {}
    rows = [
        (
            c,
            c.name in chosen,
            chosen[c.name].environment if c.name in chosen else c.environment,
            chosen[c.name].service if c.name in chosen else c.service,
            forms.field_name("legacy_env", c.name),
            forms.field_name("legacy_service", c.name),
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


@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters()
@require(Action.CREATE_SECRET)
def secret_migrate(request: HttpRequest) -> HttpResponse:
    """The wizard: choose (GET), ``step=preview``, ``step=apply``, ``step=choose`` (back)."""
    if request.method == "GET":
        return _choose(request)
    try:
        migration = forms.migration_request(request.POST, request.FILES)
    except forms.FormProblem as exc:
        return _choose(request, error=exc.message, status=HTTPStatus.BAD_REQUEST)
    step = request.POST.get("step", "preview")
    if step == "choose":
        return _choose(request, migration)
    if step == "apply":
        return _apply(request, migration)
    try:
        plan = wizard.migration_plan(
            repo=migration.repo,
            sources=migration.sources,
            env_text=migration.env_text,
            overwrite=migration.overwrite,
        )
    except errors.ChangeRefused as exc:
        return _choose(request, migration, error=exc.message, status=HTTPStatus.BAD_REQUEST)
    except aws.AwsError as exc:
        return _choose(request, migration, error=exc.message, status=HTTPStatus.BAD_GATEWAY)
    return render(
        request,
        TEMPLATE,
        {
            "step": "preview",
            "plan": plan,
            "fields": migration.fields(),
            "change_id": protocol.new_change_id(),
        },
    )


def _apply(request: HttpRequest, migration: forms.MigrationRequest) -> HttpResponse:
    try:
        result = wizard.secret_migrate(
            repo=migration.repo,
            sources=migration.sources,
            env_text=migration.env_text,
            overwrite=migration.overwrite,
            digest=request.POST.get("digest", ""),
            context=audit.Context.from_request(request),
            change_id=request.POST.get("change_id", ""),
        )
    except errors.Conflict as exc:
        error = exc.message
    except errors.ChangeRefused as exc:
        error = exc.message
    except (audit.AuditUnavailable, errors.SavedUnrecorded) as exc:
        error = exc.message
    except aws.AwsError as exc:
        error = exc.message
    else:
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
    return _choose(request, migration, error=error, status=HTTPStatus.BAD_REQUEST)


@require_POST
@never_cache
@require(Action.CREATE_SECRET)
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
    except errors.ChangeRefused as exc:
        messages.error(request, exc.message)
    except audit.AuditUnavailable as exc:
        messages.error(request, exc.message)
    except aws.AwsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{name} is scheduled for deletion on {when:%Y-%m-%d %H:%M} UTC ({days} days to "
            "restore it).",
        )
    return redirect("secrets_admin:secret_migrate")
