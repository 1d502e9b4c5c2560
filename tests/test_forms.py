"""The editor's fields -> intent -> changeset (no AWS): explicit fields only, never the form."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from secrets_admin import changesets, documents, errors, forms
from secrets_admin.changes import editor, protocol
from secrets_admin.changesets import Edit
from secrets_admin.forms import field_name

from .conftest import STANDARD_DOC

DOC = documents.parse(documents.serialise(STANDARD_DOC))


def qd(pairs: list[tuple[str, str]]) -> QueryDict:
    q = QueryDict(mutable=True)
    for k, v in pairs:
        q.appendlist(k, v)
    return q


def test_empty_inputs_leave_cells_alone_and_typed_values_are_strings() -> None:
    intent = forms.parse_edit_intent(
        qd(
            [
                (field_name("set", "dev", "stripe", "public_key"), ""),
                (field_name("set", "dev", "stripe", "secret_key"), "42"),
            ]
        )
    )
    assert editor.changeset_for(intent, DOC) == [Edit("set", "dev", "stripe", "secret_key", "42")]


def test_names_with_any_characters_round_trip_through_field_names() -> None:
    cell = ('e"v', "s:[]", "k\\ é")
    intent = forms.parse_edit_intent(qd([(field_name("set", *cell), "v")]))
    assert intent.values == {cell: "v"}
    assert forms.parse_edit_intent(qd(forms.intent_fields(intent))).values == intent.values


def test_canonical_fields_round_trip_every_kind_of_edit() -> None:
    intent = editor.EditIntent(
        values={("dev", "s", "k"): "v"},
        deletes=[("dev", "stripe", "public_key")],
        delete_keys=[("stripe", "secret_key")],
        add_services=[("sentry", "*"), ("x", "dev")],
        remove_services=[("databricks", "dev")],
        add_environments=[("uat", "dev"), ("qa", "")],
        remove_environments=["sandbox"],
    )
    again = forms.parse_edit_intent(qd(forms.intent_fields(intent)))
    assert again == intent


def test_new_key_rows_pair_up_by_position() -> None:
    intent = forms.parse_edit_intent(
        qd(
            [
                ("new-service", "a"),
                ("new-key", "k1"),
                (field_name("new-value", "dev"), "v1"),
                (field_name("new-value", "sandbox"), ""),
                ("new-service", ""),
                ("new-key", ""),
                (field_name("new-value", "dev"), ""),
                (field_name("new-value", "sandbox"), ""),
                ("new-service", "b"),
                ("new-key", "k2"),
                (field_name("new-value", "dev"), ""),
                (field_name("new-value", "sandbox"), "v2"),
            ]
        )
    )
    assert intent.values == {("dev", "a", "k1"): "v1", ("sandbox", "b", "k2"): "v2"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("set:{bad", "x")], "damaged"),
        ([(field_name("set", "a", "b"), "x")], "damaged"),
        ([("new-service", "a")], "unequal"),
        ([("new-service", "a"), ("new-key", "")], "both a service and a key"),
        ([("newsvc-name", "a")], "unequal"),
    ],
)
def test_damaged_or_incomplete_fields_are_refused(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(forms.FormProblem, match=message):
        forms.parse_edit_intent(qd(pairs))


def test_every_environment_of_a_service_leaves_protected_ones_out() -> None:
    intent = editor.EditIntent(add_services=[("sentry", "*")], remove_services=[("stripe", "*")])
    edits = editor.changeset_for(intent, DOC)
    assert {e.environment for e in edits} == {"sandbox", "dev"}
    assert protocol.protected_environments(edits) == []


def test_delete_everywhere_includes_protected_environments_so_it_becomes_a_change_request() -> None:
    edits = editor.changeset_for(editor.EditIntent(delete_keys=[("stripe", "public_key")]), DOC)
    assert [(e.op, e.environment) for e in edits] == [
        ("delete", "sandbox"),
        ("delete", "dev"),
        ("delete", "main"),
    ]
    assert protocol.protected_environments(edits) == ["main"]


def test_environment_with_the_structure_of_another_gets_keys_without_values() -> None:
    edits = editor.changeset_for(editor.EditIntent(add_environments=[("uat", "dev")]), DOC)
    new = changesets.apply(DOC, edits)
    assert new["uat"] == {
        "stripe": {"public_key": "", "secret_key": ""},
        "databricks": {"client_id": "", "client_secret": ""},
    }


@pytest.mark.parametrize(
    ("intent", "message"),
    [
        (editor.EditIntent(add_environments=[("dev", "")]), "exists already"),
        (editor.EditIntent(add_environments=[("uat", "nope")]), "does not exist"),
        (editor.EditIntent(add_services=[("stripe", "dev")]), "exists already in dev"),
        (
            editor.EditIntent(
                values={("dev", "stripe", "public_key"): "x"},
                deletes=[("dev", "stripe", "public_key")],
            ),
            "both a new value and a deletion",
        ),
    ],
)
def test_impossible_intents_are_refused(intent: editor.EditIntent, message: str) -> None:
    with pytest.raises(errors.InvalidChange, match=message):
        editor.changeset_for(intent, DOC)


def test_editor_grid_never_carries_existing_values() -> None:
    from secrets_admin import reads

    page = reads.SecretPage(name="a-secrets", description=None)  # type: ignore[arg-type]
    page.environments = ["dev", "main"]
    page.rows = [
        reads.RowView(
            "stripe",
            "secret_key",
            [
                ("dev", reads.CellView(True, "string", "fp1")),
                ("main", reads.CellView(True, "string", "fp2")),
            ],
            first_of_service=True,
        )
    ]
    intent = editor.EditIntent(
        values={("dev", "stripe", "secret_key"): "typed", ("gone", "s", "k"): "v"}
    )
    grid = forms.editor_grid(page, intent)
    (row,) = grid.rows
    assert [c.typed for c in row.cells] == ["typed", ""]
    assert [c.protected for c in row.cells] == [False, True]
    assert grid.pending == [(field_name("set", "gone", "s", "k"), "v")]


@pytest.mark.parametrize(
    ("text", "value_type", "stored"),
    [
        ("false", "boolean", "false"),
        (" TRUE ", "boolean", "true"),
        ("1.50", "number", "1.50"),
        ("", "null", "null"),
        ('{"a": [1, null]}', "json", '{"a":[1,null]}'),
        ("false", "string", '"false"'),
    ],
)
def test_a_typed_value_is_stored_with_the_type_the_person_chose(
    text: str, value_type: str, stored: str
) -> None:
    cell = ("dev", "stripe", "public_key")
    pairs = [(field_name("set", *cell), text), (field_name("type", *cell), value_type)]
    intent = forms.parse_edit_intent(qd(pairs))
    (edit,) = editor.changeset_for(intent, DOC)
    assert documents.serialise(edit.value) == stored
    assert forms.parse_edit_intent(qd(forms.intent_fields(intent))) == intent


@pytest.mark.parametrize(
    ("text", "value_type", "message"),
    [
        ("CANARY-12", "number", "not a number"),
        ("CANARY-yes", "boolean", "true or false"),
        ("CANARY-{", "json", "not valid JSON"),
        ("CANARY-x", "null", "a null takes no value"),
    ],
)
def test_a_value_that_is_not_of_its_type_is_refused_without_quoting_it(
    text: str, value_type: str, message: str
) -> None:
    cell = ("dev", "stripe", "public_key")
    intent = editor.EditIntent(values={cell: text}, types={cell: value_type})
    with pytest.raises(errors.InvalidChange, match=message) as caught:
        editor.changeset_for(intent, DOC)
    assert "CANARY" not in caught.value.message


def test_an_unknown_value_type_is_a_damaged_form() -> None:
    cell = ("dev", "stripe", "public_key")
    pairs = [(field_name("set", *cell), "1"), (field_name("type", *cell), "float")]
    with pytest.raises(forms.FormProblem, match="damaged"):
        forms.parse_edit_intent(qd(pairs))


def test_a_null_left_as_it_was_is_no_edit_and_a_new_key_row_has_one_type() -> None:
    doc = documents.parse('{"dev": {"flags": {"off": null}}}')
    pairs = [
        (field_name("set", "dev", "flags", "off"), ""),
        (field_name("type", "dev", "flags", "off"), "null"),
        ("new-service", "flags"),
        ("new-key", "retries"),
        ("new-type", "number"),
        (field_name("new-value", "dev"), "3"),
    ]
    edits = editor.changeset_for(forms.parse_edit_intent(qd(pairs)), doc)
    assert documents.serialise(changesets.apply(doc, edits)) == (
        '{"dev":{"flags":{"off":null,"retries":3}}}'
    )
