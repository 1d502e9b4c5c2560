"""The review and save steps every save flow shares (edit, restore, environment copy): one
review page and one save runner, so each flow only says what it reviews and what it saves.

Each step has its own URL (``<flow>_review``, ``<flow>_save``); a review renders nothing but a
description of the changes (no value) and a confirm form carrying a fresh change id.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .. import audit, aws, documents, errors, history, reads
from ..changes import protocol
from ..models import ChangeRequest
from .errors import error_response

#: What a review step computes: the edit state of the base and the preview of the changes.
Review = Callable[[], tuple[reads.EditState, protocol.Preview]]
#: What a save step runs: (audit context, change id) -> the landed save or an opened request.
Save = Callable[[audit.Context, str], protocol.SaveResult | ChangeRequest]


def review_page(
    request: HttpRequest,
    *,
    name: str,
    preview: protocol.Preview,
    state: reads.EditState,
    save_action: str,
    fields: list[tuple[str, str]],
    title: str,
    back_action: str = "",
    back_url: str = "",
    back_label: str = "",
    typed: bool = False,
) -> HttpResponse:
    """The review: cells and structure changed (fingerprints, never values), the new size,
    warnings, and a confirm form posting ``fields`` and a fresh change id to ``save_action``.
    ``back_action``: a form back to the editor with the same fields; else a ``back_url`` link.
    ``typed``: the new values were typed by the person, so their fingerprints are not shown
    (a fingerprint of a guess would tell whether it equals a stored value elsewhere)."""
    return render(
        request,
        "secrets_admin/secret_edit_review.html",
        {
            "name": name,
            "title": title,
            "preview": preview,
            "state": state,
            "save_action": save_action,
            "back_action": back_action,
            "fields": fields,
            "back_url": back_url,
            "back_label": back_label,
            "change_id": protocol.new_change_id(
                user=request.user, name=name, base_version_id=preview.base_version_id
            ),
            "max_bytes": documents.MAX_SECRET_BYTES,
            "typed": typed,
        },
    )


def review_step(
    request: HttpRequest,
    *,
    name: str,
    review: Review,
    back: str,
    no_changes: str,
    save_action: str,
    fields: list[tuple[str, str]],
    title: str,
    back_label: str,
    warnings: Callable[[], list[str]] = list,
) -> HttpResponse:
    """Run ``review``; a refusal goes back to ``back`` with its message, no change says
    ``no_changes`` there, an AWS failure is an error page (:func:`error_response`)."""
    try:
        state, preview = review()
    except errors.ChangeRefused as exc:
        messages.error(request, exc.message)
        return redirect(back)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    if not preview.cells and not preview.structure:
        messages.info(request, no_changes)
        return redirect(back)
    state.warnings.extend(warnings())
    return review_page(
        request,
        name=name,
        preview=preview,
        state=state,
        save_action=save_action,
        fields=fields,
        title=title,
        back_url=back,
        back_label=back_label,
    )


def run_save(
    request: HttpRequest,
    name: str,
    run: Save,
    *,
    again: Callable[[errors.PortalError], HttpResponse],
    reapply_action: str,
    reapply_fields: list[tuple[str, str]],
    done: str,
    typed: bool = False,
) -> HttpResponse:
    """Run one save use case and turn every outcome into a response (invariant 6): a conflict
    shows base / theirs / yours (409); a refusal goes ``again`` with the error (its status); an
    AWS or audit failure is an error page; a landed save or an opened request redirects."""
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
                "typed": typed,
                "conflict_rows": zip(
                    conflict.cells,
                    history.cell_last_changes(
                        name, [(c.environment, c.service, c.key) for c in conflict.cells]
                    ),
                    strict=True,
                ),
                "reapply_action": reapply_action,
                "reapply_fields": reapply_fields,
            },
            status=conflict.status,
        )
    except (errors.ChangeRefused, aws.SecretTooLarge) as exc:
        return again(exc)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
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
        counts = result.counts
        messages.success(
            request,
            f"Saved as version {result.new_version_id}: {counts['added']} added, "
            f"{counts['changed']} changed, {counts['removed']} removed"
            + (f" (rebased {result.rebased}x onto others' saves)" if result.rebased else "")
            + ".",
        )
    return redirect(done)


def save_step(
    request: HttpRequest,
    *,
    name: str,
    run: Save,
    back: str,
    reapply_action: str,
    reapply_fields: list[tuple[str, str]],
) -> HttpResponse:
    """:func:`run_save` for flows reviewed outside the editor: a refusal goes back to ``back``
    with its message, a save ends there too."""

    def again(exc: errors.PortalError) -> HttpResponse:
        if isinstance(exc, protocol.ForeignChangeId):  # a crafted post: 400, not a redirect
            return error_response(request, exc, name=name)
        messages.error(request, exc.message)
        return redirect(back)

    return run_save(
        request,
        name,
        run,
        again=again,
        reapply_action=reapply_action,
        reapply_fields=reapply_fields,
        done=back,
    )
