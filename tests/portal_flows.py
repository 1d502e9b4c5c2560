"""Portal writes driven the way a browser drives them: open the page, fill its form, submit the
button it offers for the next step (each step of a wizard has its own URL)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.urls import reverse

from secrets_admin.forms import field_name

from .test_views_editor import Forms


def _submit(client: Any, form: dict[str, Any], **extra: str) -> Any:
    data: dict[str, list[str]] = {}
    for name, value in form["fields"]:
        data.setdefault(name, []).append(value)
    for name, value in extra.items():
        data[name] = [value]
    return client.post(form["action"], data)


def save_cells(
    client: Any,
    name: str,
    cells: dict[tuple[str, str, str], str],
    *,
    expect: HTTPStatus = HTTPStatus.FOUND,
    **extra: str,
) -> Any:
    """Edit ``{(environment, service, key): value}`` in the editor, review, then save (or
    propose, for a protected environment). Returns the response to the final post, whose
    status must be ``expect``."""
    editor = client.get(reverse("secrets_admin:secret_edit", args=[name]))
    assert editor.status_code == HTTPStatus.OK
    fields = {field_name("set", *cell): value for cell, value in cells.items()}
    reviewed = _submit(client, Forms(editor.content.decode()).with_button("review"), **fields)
    assert reviewed.status_code == HTTPStatus.OK, reviewed.content.decode()[:2000]
    saved = _submit(client, Forms(reviewed.content.decode()).with_button("save"), **extra)
    assert saved.status_code == expect, saved.content.decode()[:2000]
    return saved


def restore_environment(client: Any, name: str, environment: str, version_id: str) -> Any:
    """Restore one environment from an older version through the history page's form."""
    history = client.get(reverse("secrets_admin:secret_history", args=[name]))
    assert history.status_code == HTTPStatus.OK
    form = next(
        f
        for f in Forms(history.content.decode()).forms
        if ("version_id", version_id) in f["fields"]
    )
    reviewed = _submit(client, form, environment=environment)
    assert reviewed.status_code == HTTPStatus.OK, reviewed.content.decode()[:2000]
    saved = _submit(client, Forms(reviewed.content.decode()).with_button("save"))
    assert saved.status_code == HTTPStatus.FOUND
    return saved


def approve_change_request(client: Any, request_id: int) -> Any:
    """Approve from the change request's page (applies once approvals are complete)."""
    response = client.post(
        reverse("secrets_admin:change_request_approve", args=[request_id]), {"comment": "ok"}
    )
    assert response.status_code == HTTPStatus.FOUND
    return response


def save_that_crashes(client: Any, name: str, value: str, monkeypatch: Any) -> Any:
    """Save ``value`` into dev/stripe/secret_key while the gateway's ``stage_version`` fails
    unexpectedly, holding the document in a local variable and quoting it in the exception's
    message (the worst case for logs and error reports). Returns the 500 response."""
    from secrets_admin import aws

    def stage_version(name: str, *, text: str, **kwargs: Any) -> Any:
        document = text
        raise ValueError(f"cannot stage {document}")

    monkeypatch.setattr(aws, "stage_version", stage_version)
    client.raise_request_exception = False
    return save_cells(
        client,
        name,
        {("dev", "stripe", "secret_key"): value},
        expect=HTTPStatus.INTERNAL_SERVER_ERROR,
    )
