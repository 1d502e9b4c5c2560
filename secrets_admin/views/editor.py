"""The grid editor with its review and conflict steps, and the per-environment restore.

Edited values live only in the browser's form until the person confirms (no drafts on the
server). The steps, all on ``secret_edit``:

* GET: the editor on the current version; POST ``step=edit``: the editor again on the posted base
  with the posted edits filled back in;
* POST ``step=review``: the changeset (cells added / changed / removed, masked, fingerprints),
  the new size, warnings, and a confirm form carrying the edits and a fresh change id;
* POST ``step=save``: one compare-and-swap save; a conflict shows base / theirs / yours.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import audit, aws, documents, errors, forms, reads
from ..changes import editor, lifecycle, protocol, restore
from ..changes import preview as previews
from ..models import ChangeRequest
from ..permissions import Action, require
from . import HtmxHttpRequest
from .secrets import _aws_error_page, _check_name

MAX_BLANK_ROWS = 20


def _blank_rows(request: HttpRequest) -> int:
    try:
        return max(1, min(MAX_BLANK_ROWS, int(request.GET.get("rows", "1"))))
    except ValueError:
        return 1


def _editor(
    request: HttpRequest,
    name: str,
    *,
    intent: editor.EditIntent | None = None,
    base_version_id: str | None = None,
    error: str = "",
    notice: str = "",
    status: int = HTTPStatus.OK,
) -> HttpResponse:
    try:
        state = reads.secret_edit_state(name=name, version_id=base_version_id)
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
    blank = _blank_rows(request) if request.method == "GET" else 1
    grid = (
        forms.editor_grid(state.page, intent or editor.EditIntent(), blank_rows=blank)
        if not state.blocker
        else None
    )
    return render(
        request,
        "secrets_admin/secret_edit.html",
        {
            "name": name,
            "state": state,
            "grid": grid,
            "item": ("", ""),
            "error": error,
            "notice": notice,
            "max_bytes": documents.MAX_SECRET_BYTES,
            "more_rows": min(MAX_BLANK_ROWS, blank + 3),
            "all_environments": editor.ALL_ENVIRONMENTS,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The editor (GET), and its review / save / back-to-editor steps (POST ``step``)."""
    _check_name(name)
    if request.method == "GET":
        return _editor(request, name)
    base_version_id = request.POST.get("base_version_id", "")[:64]
    try:
        intent = forms.parse_edit_intent(request.POST)
    except forms.FormProblem as exc:
        return _editor(request, name, error=exc.message, status=HTTPStatus.BAD_REQUEST)
    step = request.POST.get("step", "review")
    if not base_version_id or step == "edit":
        return _editor(request, name, intent=intent, base_version_id=base_version_id or None)
    if intent.empty:
        return _editor(
            request,
            name,
            intent=intent,
            base_version_id=base_version_id,
            notice=str(errors.NoChanges()),
        )
    if step == "save":
        return _save(request, name, intent, base_version_id)
    return _review(request, name, intent, base_version_id)


def _review(
    request: HttpRequest, name: str, intent: editor.EditIntent, base_version_id: str
) -> HttpResponse:
    try:
        state, preview = previews.secret_preview_changes(
            name=name, base_version_id=base_version_id, intent=intent
        )
    except errors.ChangeRefused as exc:
        return _editor(
            request,
            name,
            intent=intent,
            base_version_id=base_version_id,
            error=exc.message,
            status=HTTPStatus.BAD_REQUEST,
        )
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
    if not preview.cells and not preview.structure:
        return _editor(
            request,
            name,
            intent=intent,
            base_version_id=base_version_id,
            notice=errors.NoChanges().message,
        )
    return _review_page(
        request,
        name=name,
        preview=preview,
        state=state,
        action=reverse("secrets_admin:secret_edit", args=[name]),
        fields=forms.intent_fields(intent),
        title=f"Review changes to {name}",
        back_fields=True,
    )


def _review_page(
    request: HttpRequest,
    *,
    name: str,
    preview: protocol.Preview,
    state: reads.EditState,
    action: str,
    fields: list[tuple[str, str]],
    title: str,
    back_fields: bool,
    back_url: str = "",
) -> HttpResponse:
    return render(
        request,
        "secrets_admin/secret_edit_review.html",
        {
            "name": name,
            "title": title,
            "preview": preview,
            "state": state,
            "action": action,
            "fields": fields,
            "back_fields": back_fields,
            "back_url": back_url,
            "change_id": protocol.new_change_id(),
            "max_bytes": documents.MAX_SECRET_BYTES,
        },
    )


def _save(
    request: HttpRequest, name: str, intent: editor.EditIntent, base_version_id: str
) -> HttpResponse:
    def again(message: str, status: int) -> HttpResponse:
        return _editor(
            request,
            name,
            intent=intent,
            base_version_id=base_version_id,
            error=message,
            status=status,
        )

    return _run_save(
        request,
        name,
        lambda context, change_id: editor.secret_save_changes(
            name=name,
            base_version_id=base_version_id,
            changeset=intent,
            context=context,
            change_id=change_id,
            comment=request.POST.get("comment", "")[:2000],
        ),
        again=again,
        reapply_action=reverse("secrets_admin:secret_edit", args=[name]),
        reapply_fields=forms.intent_fields(intent),
        done=reverse("secrets_admin:secret_detail", args=[name]),
    )


def _run_save(
    request: HttpRequest,
    name: str,
    run: Callable[[audit.Context, str], protocol.SaveResult | ChangeRequest],
    *,
    again: Callable[[str, int], HttpResponse],
    reapply_action: str,
    reapply_fields: list[tuple[str, str]],
    done: str,
) -> HttpResponse:
    """Run one save use case and turn every outcome into a response (invariant 6)."""
    change_id = request.POST.get("change_id", "")
    try:
        result = run(audit.Context.from_request(request), change_id)
    except errors.Conflict as conflict:
        return render(
            request,
            "secrets_admin/secret_edit_conflict.html",
            {
                "name": name,
                "conflict": conflict,
                "reapply_action": reapply_action,
                "reapply_fields": reapply_fields,
            },
            status=HTTPStatus.CONFLICT,
        )
    except errors.NoChanges as exc:
        return again(exc.message, HTTPStatus.OK)
    except errors.ChangeRefused as exc:
        status = (
            HTTPStatus.CONFLICT if isinstance(exc, errors.SaveContended) else HTTPStatus.BAD_REQUEST
        )
        return again(exc.message, status)
    except aws.SecretTooLarge as exc:
        return again(exc.message, HTTPStatus.BAD_REQUEST)
    except (audit.AuditUnavailable, errors.SavedUnrecorded) as exc:
        return render(
            request,
            "secrets_admin/aws_error.html",
            {"error": exc, "name": name},
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
    if isinstance(result, ChangeRequest):
        messages.success(
            request,
            f"Nothing is saved yet: {', '.join(result.environments)} needs approval, so your "
            f"edits became change request #{result.pk}. An approver has been asked to review it; "
            "it is applied once approved.",
        )
        return redirect("secrets_admin:change_request_detail", request_id=result.pk)
    if result.already_saved:
        messages.info(request, f"This change was already saved (version {result.new_version_id}).")
    else:
        counts = protocol.Preview(name, "", result.cells, result.structure, 0, 0).counts
        messages.success(
            request,
            f"Saved as version {result.new_version_id}: {counts['added']} added, "
            f"{counts['changed']} changed, {counts['removed']} removed"
            + (f" (rebased {result.rebased}x onto others' saves)" if result.rebased else "")
            + ".",
        )
    return redirect(done)


@require_GET
@require(Action.EDIT)
def secret_edit_row(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """One blank row for the editor (htmx): ``kind`` = key, service or environment; the
    environment columns come from the form's ``column`` fields (no AWS call)."""
    _check_name(name)
    kind = request.GET.get("kind", "key")
    envs = [e for e in request.GET.getlist("column")[:200] if documents.name_problem(e) is None]
    grid = forms.rows_only_grid(envs)
    partial = {
        "key": "new-key-row",
        "service": "new-service-row",
        "environment": "new-environment-row",
    }
    if kind not in partial:
        return HttpResponse(status=HTTPStatus.BAD_REQUEST)
    return render(
        request,
        f"secrets_admin/secret_edit.html#{partial[kind]}",
        {
            "name": name,
            "row": forms.blank_key_row(grid.columns),
            "grid": grid,
            "item": ("", ""),
            "all_environments": editor.ALL_ENVIRONMENTS,
        },
    )


# --------------------------------------------------------------------------------------------
# Restore one environment


@require_POST
@never_cache
@require(Action.EDIT)
def secret_restore_environment(request: HttpRequest, name: str) -> HttpResponse:
    """Restore one environment to its content in an older version (POST ``environment``,
    ``version_id``): ``step=review`` shows the changeset against the current version,
    ``step=save`` saves it through the compare-and-swap path."""
    _check_name(name)
    environment = request.POST.get("environment", "")
    version_id = request.POST.get("version_id", "")[:64]
    history = reverse("secrets_admin:secret_history", args=[name])
    if not environment or not version_id:
        messages.error(request, "Choose an environment and a version to restore.")
        return redirect(history)
    fields = [("environment", environment), ("version_id", version_id)]
    if request.POST.get("step") == "save":
        base_version_id = request.POST.get("base_version_id", "")[:64]

        def again(message: str, status: int) -> HttpResponse:
            messages.error(request, message)
            return redirect(history)

        return _run_save(
            request,
            name,
            lambda context, change_id: restore.secret_restore_environment(
                name=name,
                environment=environment,
                version_id=version_id,
                base_version_id=base_version_id,
                context=context,
                change_id=change_id,
            ),
            again=again,
            reapply_action=reverse("secrets_admin:secret_restore_environment", args=[name]),
            reapply_fields=fields,
            done=history,
        )
    try:
        state, preview = previews.secret_preview_restore(
            name=name, environment=environment, version_id=version_id
        )
    except errors.ChangeRefused as exc:
        messages.error(request, exc.message)
        return redirect(history)
    except aws.AwsError as exc:
        return _aws_error_page(request, exc, name=name)
    if not preview.cells and not preview.structure:
        messages.info(
            request, f"No changes: {environment} is already as it was in version {version_id}."
        )
        return redirect(history)
    return _review_page(
        request,
        name=name,
        preview=preview,
        state=state,
        action=reverse("secrets_admin:secret_restore_environment", args=[name]),
        fields=fields,
        title=f"Restore {environment} of {name} to version {version_id}",
        back_fields=False,
    )


# --------------------------------------------------------------------------------------------
# Create and undelete (admins)


@require_http_methods(["GET", "POST"])
@never_cache
@require(Action.CREATE_SECRET)
def secret_create(request: HttpRequest) -> HttpResponse:
    """Create a unified secret with its first version (admins)."""
    form = forms.SecretCreateForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "suffix": settings.PORTAL_SECRET_SUFFIX}
    if request.method == "POST" and form.is_valid():
        try:
            created = lifecycle.secret_create(
                context=audit.Context.from_request(request), **form.use_case_arguments()
            )
        except errors.SecretPendingDeletion as exc:
            context.update(error=exc.message, pending=exc.name)
        except errors.ChangeRefused as exc:
            context["error"] = exc.message
        except audit.AuditUnavailable as exc:
            context["error"] = exc.message
        except aws.AwsError as exc:
            context["error"] = exc.message
        else:
            name = f"{form.cleaned_data['repo']}{settings.PORTAL_SECRET_SUFFIX}"
            messages.success(request, f"Created {name} (version {created.version_id}).")
            return redirect("secrets_admin:secret_detail", name=name)
    status = HTTPStatus.BAD_REQUEST if request.method == "POST" else HTTPStatus.OK
    return render(request, "secrets_admin/secret_create.html", context, status=status)


@require_POST
@require(Action.CREATE_SECRET)
def secret_undelete(request: HttpRequest, name: str) -> HttpResponse:
    """Cancel a scheduled deletion (``RestoreSecret``; admins)."""
    _check_name(name)
    try:
        lifecycle.secret_undelete(name=name, context=audit.Context.from_request(request))
    except audit.AuditUnavailable as exc:
        messages.error(request, exc.message)
    except aws.AwsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{name} is no longer scheduled for deletion.")
    return redirect("secrets_admin:secret_detail", name=name)
