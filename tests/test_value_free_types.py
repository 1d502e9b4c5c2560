"""Every type of the write use cases and the read side that is built from a secret's document
prints no value: ``repr()`` and ``str()`` of each, built from a document of canaries, hold none
(a value leaves Secrets Manager only in a permitted reveal: values live only in Secrets Manager)."""

from __future__ import annotations

from typing import Any

import pytest

from secrets_admin import audit, aws, errors, reads
from secrets_admin.changes import editor, protocol
from secrets_admin.changes import preview as previews
from secrets_admin.changesets import Edit

NAME = "canary-types-secrets"
CANARY = "CANARY-types-7f3a"
DOC = {
    "sandbox": {"stripe": {"secret_key": CANARY + "-sb", "port": 5432}},
    "dev": {"stripe": {"secret_key": CANARY + "-dev", "nested": {"deep": CANARY + "-deep"}}},
}
TYPED = CANARY + "-typed"


def assert_value_free(*objects: Any) -> None:
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert CANARY not in text, f"{type(obj).__name__} prints a value: {text[:200]}"


@pytest.fixture
def ctx(engineer: Any) -> audit.Context:
    return audit.Context(user=engineer, client_ip="127.0.0.1", user_agent="pytest")


def test_change_and_read_types_print_no_value(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, DOC)
    base = protocol.read_version(NAME)
    intent = editor.EditIntent(values={("dev", "stripe", "secret_key"): TYPED})
    state, preview = previews.secret_preview_changes(
        name=NAME, base_version_id=base.version_id, intent=intent, context=ctx
    )
    cell = ("dev", "stripe", "secret_key")
    conflict_cell = protocol.ConflictCell(
        *cell,
        base=protocol.cell_state(base.document, cell),
        theirs=protocol.cell_state(base.document, cell),
        yours=protocol.cell_state({"dev": {"stripe": {"secret_key": TYPED}}}, cell),
    )
    conflict = errors.Conflict(
        name=NAME,
        cells=[conflict_cell],
        base_version_id=base.version_id,
        current_version_id=base.version_id,
        yours_version_id=base.version_id,
    )
    saved = editor.secret_save_changes(
        name=NAME,
        base_version_id=base.version_id,
        changeset=[Edit("set", "sandbox", "stripe", "secret_key", TYPED)],
        context=ctx,
        change_id=protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base.version_id),
    )
    assert isinstance(saved, protocol.SaveResult) and saved.cells
    assert_value_free(
        base,
        intent,
        state,
        state.page,
        preview,
        *preview.cells,
        conflict_cell,
        conflict,
        saved,
        reads.secret_open(NAME),
        reads.change_request_review,  # a function: trivially value-free, keeps the import honest
    )


def test_refusals_print_no_value(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, DOC)
    base = aws.read_current(NAME).version_id
    with pytest.raises(errors.PortalError) as refused:
        editor.secret_save_changes(
            name=NAME,
            base_version_id=base,
            changeset=[
                Edit("set", "dev", "stripe", "nested", TYPED),
                Edit("delete", "dev", "x", "y"),
            ],
            context=ctx,
            change_id=protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base),
        )
    assert_value_free(refused.value)
