"""The grid editor with its review and conflict steps, the per-environment restore, and the
admins' create / undelete.

Edited values live only in the browser's form until the person confirms (no drafts on the
server). One URL per step:

* ``secret_edit``: GET, the editor on the current version; POST, the editor again on the posted
  base with the posted edits filled back in ("back to the editor");
* ``secret_edit_review`` (POST): the changeset (cells added / changed / removed, masked,
  fingerprints), the new size, warnings, and a confirm form carrying the edits and a change id;
* ``secret_edit_save`` (POST): one compare-and-swap save; a conflict shows base / theirs / yours;
* ``secret_restore_review`` -> ``secret_restore_save``: the same for restoring one environment.
"""

from __future__ import annotations

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

from .. import audit, documents, errors, forms, reads
from ..changes import editor, lifecycle, protocol, restore
from ..changes import preview as previews
from ..permissions import Action, require
from . import HtmxHttpRequest
from .errors import error_response
from .saving import review_page, review_step, run_save, save_step

NO_CHANGES = errors.NoChanges.message

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
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
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
            "value_types": editor.VALUE_TYPES,
            "confirmation": intent.confirmation if intent else "",
        },
        status=status,
    )


def _posted(request: HttpRequest) -> tuple[str, editor.EditIntent]:
    """The base version id and the edits of a posted editor form; bad input is a 400 with the
    editor again (:class:`~secrets_admin.forms.FormProblem` carries the reason)."""
    try:
        return request.POST.get("base_version_id", "")[:64], forms.parse_edit_intent(request.POST)
    except forms.FormProblem as exc:
        raise errors.InvalidInput(exc.message) from None


def _posted_edits(request: HttpRequest, name: str) -> tuple[str, editor.EditIntent] | HttpResponse:
    """The posted base and edits to review or save, or the editor again when there is nothing
    to review (bad input: 400; no base: the current version; no edit: "no changes")."""
    try:
        base_version_id, intent = _posted(request)
    except errors.InvalidInput as exc:
        return _editor(request, name, error=exc.message, status=exc.status)
    if not base_version_id:
        return _editor(request, name, intent=intent)
    if intent.empty:
        return _editor(
            request, name, intent=intent, base_version_id=base_version_id, notice=NO_CHANGES
        )
    return base_version_id, intent


@require_http_methods(["GET", "POST"])
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The editor: on the current version (GET), or again on the posted base with the posted
    edits filled back in (POST, "back to the editor")."""
    if request.method == "GET":
        return _editor(request, name)
    try:
        base_version_id, intent = _posted(request)
    except errors.InvalidInput as exc:
        return _editor(request, name, error=exc.message, status=exc.status)
    return _editor(request, name, intent=intent, base_version_id=base_version_id or None)


@require_POST
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_edit_review(request: HttpRequest, name: str) -> HttpResponse:
    """The review of the posted edits: cells added / changed / removed (masked, fingerprints),
    the new size, warnings, and a confirm form (to ``secret_edit_save``) with a fresh change id."""
    posted = _posted_edits(request, name)
    if isinstance(posted, HttpResponse):
        return posted
    base_version_id, intent = posted
    try:
        state, preview = previews.secret_preview_changes(
            name=name,
            base_version_id=base_version_id,
            intent=intent,
            context=audit.Context.from_request(request),
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
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    if not preview.cells and not preview.structure:
        return _editor(
            request, name, intent=intent, base_version_id=base_version_id, notice=NO_CHANGES
        )
    return review_page(
        request,
        name=name,
        preview=preview,
        state=state,
        save_action=reverse("secrets_admin:secret_edit_save", args=[name]),
        back_action=reverse("secrets_admin:secret_edit", args=[name]),
        fields=forms.intent_fields(intent),
        title=f"Review changes to {name}",
        typed=True,
    )


@require_POST
@never_cache
@sensitive_post_parameters()
@require(Action.EDIT)
def secret_edit_save(request: HttpRequest, name: str) -> HttpResponse:
    """Save the reviewed edits: one compare-and-swap save, or a change request for a protected
    environment; a conflict shows base / theirs / yours."""
    posted = _posted_edits(request, name)
    if isinstance(posted, HttpResponse):
        return posted
    base_version_id, intent = posted

    def again(exc: errors.PortalError) -> HttpResponse:
        return _editor(
            request,
            name,
            intent=intent,
            base_version_id=base_version_id,
            error=exc.message,
            status=exc.status,
        )

    return run_save(
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
        reapply_action=reverse("secrets_admin:secret_edit_review", args=[name]),
        reapply_fields=forms.intent_fields(intent),
        done=reverse("secrets_admin:secret_detail", args=[name]),
        typed=True,
    )


@require_GET
@require(Action.EDIT)
def secret_edit_row(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """One blank row for the editor (htmx): ``kind`` = key, service or environment; the
    environment columns come from the form's ``column`` fields (no AWS call)."""
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
            "value_types": editor.VALUE_TYPES,
        },
    )


# --------------------------------------------------------------------------------------------
# Restore one environment


def _restore_input(request: HttpRequest, name: str) -> tuple[str, str, str]:
    """``environment``, ``version_id`` posted, and the history page to go back to."""
    environment = request.POST.get("environment", "")[:255]
    version_id = request.POST.get("version_id", "")[:64]
    history = reverse("secrets_admin:secret_history", args=[name])
    if not environment or not version_id:
        raise errors.InvalidInput("Choose an environment and a version to restore.")
    return environment, version_id, history


@require_POST
@never_cache
@require(Action.EDIT)
def secret_restore_review(request: HttpRequest, name: str) -> HttpResponse:
    """The review of restoring one environment (POST ``environment``, ``version_id``) to its
    content in an older version, against the current version."""
    try:
        environment, version_id, history = _restore_input(request, name)
    except errors.InvalidInput as exc:
        messages.error(request, exc.message)
        return redirect("secrets_admin:secret_history", name=name)
    return review_step(
        request,
        name=name,
        review=lambda: previews.secret_preview_restore(
            name=name, environment=environment, version_id=version_id
        ),
        back=history,
        back_label="Back to the history",
        no_changes=f"No changes: {environment} is already as it was in version {version_id}.",
        save_action=reverse("secrets_admin:secret_restore_save", args=[name]),
        fields=[("environment", environment), ("version_id", version_id)],
        title=f"Restore {environment} of {name} to version {version_id}",
    )


@require_POST
@never_cache
@require(Action.EDIT)
def secret_restore_save(request: HttpRequest, name: str) -> HttpResponse:
    """Save the reviewed restore through the compare-and-swap path (a change request for a
    protected environment)."""
    try:
        environment, version_id, history = _restore_input(request, name)
    except errors.InvalidInput as exc:
        messages.error(request, exc.message)
        return redirect("secrets_admin:secret_history", name=name)
    base_version_id = request.POST.get("base_version_id", "")[:64]
    return save_step(
        request,
        name=name,
        run=lambda context, change_id: restore.secret_restore_environment(
            name=name,
            environment=environment,
            version_id=version_id,
            base_version_id=base_version_id,
            context=context,
            change_id=change_id,
        ),
        back=history,
        reapply_action=reverse("secrets_admin:secret_restore_review", args=[name]),
        reapply_fields=[("environment", environment), ("version_id", version_id)],
    )


# --------------------------------------------------------------------------------------------
# Create and undelete (admins)


@require_http_methods(["GET", "POST"])
@never_cache
@require(Action.ADMINISTER_SECRETS)
def secret_create(request: HttpRequest) -> HttpResponse:
    """Create a unified secret with its first version (admins)."""
    form = forms.SecretCreateForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "suffix": settings.PORTAL_SECRET_SUFFIX}
    if request.method == "POST" and form.is_valid():
        try:
            created = lifecycle.secret_create(
                context=audit.Context.from_request(request), **form.use_case_arguments()
            )
        except errors.PortalError as exc:
            pending = exc.name if isinstance(exc, errors.SecretPendingDeletion) else ""
            context.update(error=exc.message, pending=pending)
        else:
            name = f"{form.cleaned_data['repo']}{settings.PORTAL_SECRET_SUFFIX}"
            messages.success(request, f"Created {name} (version {created.version_id}).")
            return redirect("secrets_admin:secret_detail", name=name)
    status = HTTPStatus.BAD_REQUEST if request.method == "POST" else HTTPStatus.OK
    return render(request, "secrets_admin/secret_create.html", context, status=status)


@require_POST
@never_cache
@require(Action.EDIT)
def secret_first_version(request: HttpRequest, name: str) -> HttpResponse:
    """Give a secret with no value its first version, ``{}``, then open the editor on it to add
    the first environment. A second submit finds a value and says so (400)."""
    try:
        version_id = lifecycle.secret_first_version(
            name=name,
            context=audit.Context.from_request(request),
            change_id=protocol.new_change_id(user=request.user, name=name, base_version_id=""),
        )
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    messages.success(
        request,
        f"{name} now holds an empty unified secret (version {version_id}): add its first "
        "environment.",
    )
    return redirect("secrets_admin:secret_edit", name=name)


@require_POST
@require(Action.ADMINISTER_SECRETS)
def secret_undelete(request: HttpRequest, name: str) -> HttpResponse:
    """Cancel a scheduled deletion (``RestoreSecret``; admins)."""
    try:
        lifecycle.secret_undelete(name=name, context=audit.Context.from_request(request))
    except errors.PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{name} is no longer scheduled for deletion.")
    return redirect("secrets_admin:secret_detail", name=name)
