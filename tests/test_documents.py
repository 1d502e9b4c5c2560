"""The pure document logic: classification, cells, fingerprints, changesets, diffs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secrets_admin import changesets as cs
from secrets_admin import diffs as df
from secrets_admin import documents as d

KEY = b"k"


def test_an_empty_object_is_a_conforming_unified_secret_with_no_environment_yet() -> None:
    result = d.classify("{}")
    assert result.conforming and result.document == {} and result.reasons == ()
    assert d.grid(result.document).rows == []


@pytest.mark.parametrize(
    ("text", "kind", "reason_part"),
    [
        ("", "empty", "empty"),
        ("   \n", "empty", "empty"),
        ("DATABASE_URL=postgres://x", "not_json", "not valid JSON"),
        ("{'single': 'quotes'}", "not_json", "not valid JSON"),
        ('{"a": NaN}', "not_json", "NaN"),
        ('{"dev": {"s": {"k": "1", "k": "2"}}}', "not_json", "appears twice"),
        ("[1, 2]", "non_standard", "top level is a JSON array"),
        ('"just a string"', "non_standard", "top level is a JSON string"),
        ("42", "non_standard", "top level is a JSON number"),
        ("null", "non_standard", "top level is a JSON null"),
        ('{"dev": "flat"}', "non_standard", "environment 'dev' holds a string"),
        ('{"dev": {"stripe": "sk"}}', "non_standard", "service dev.stripe holds a string"),
        ('{"dev": {"stripe": [1]}}', "non_standard", "holds a array"),
        ('{" dev": {}}', "non_standard", "leading or trailing spaces"),
        ('{"dev": {"": {}}}', "non_standard", "the name is empty"),
        ('{"dev": {"s": {"a\\u0001": "x"}}}', "non_standard", "control character"),
    ],
)
def test_classify_reports_each_odd_input(text: str, kind: str, reason_part: str) -> None:
    result = d.classify(text)
    assert result.kind == kind
    assert not result.conforming
    assert any(reason_part in r for r in result.reasons), result.reasons


def test_classify_lists_every_reason_not_only_the_first() -> None:
    result = d.classify('{"dev": "x", "main": {"s": 1}, "uat": {"ok": {"k": "v"}}}')
    assert result.kind == "non_standard"
    assert len(result.reasons) == 2


def test_conforming_document_keeps_non_string_leaves_with_their_types() -> None:
    text = '{"dev": {"s": {"n": 1.10, "big": 123456789012345678901234567890, "b": true, "z": null, "o": {"x": [1]}, "str": "v"}}}'
    result = d.classify(text)
    assert result.conforming
    types = {c.key: d.value_type(c.value) for c in d.cells(result.document)}
    assert types == {
        "n": "number",
        "big": "number",
        "b": "boolean",
        "z": "null",
        "o": "object",
        "str": "string",
    }


def test_serialise_round_trips_numbers_exactly_and_keeps_key_order() -> None:
    text = (
        '{"main":{"s":{"z":1.10,"a":1e400,"m":-0,"big":123456789012345678901234567890}},"dev":{}}'
    )
    assert d.serialise(d.parse(text)) == text


def test_binary_is_reported_with_its_size() -> None:
    result = d.classify_binary(1234)
    assert result.kind == "binary"
    assert "1234 bytes" in result.reasons[0]


def test_environments_put_the_standard_ones_first() -> None:
    doc = d.parse('{"uat": {}, "main": {}, "qa": {}, "sandbox": {}, "dev": {}}')
    assert d.environments(doc) == ["sandbox", "dev", "main", "uat", "qa"]


def test_grid_marks_missing_cells() -> None:
    doc = d.parse('{"dev": {"s": {"a": "1", "b": "2"}}, "main": {"s": {"a": "1"}}}')
    grid = d.grid(doc)
    assert [(r.service, r.key) for r in grid.rows] == [("s", "a"), ("s", "b")]
    assert grid.missing(grid.rows[1]) == ["main"]
    assert grid.missing(grid.rows[0]) == []


def test_fingerprint_distinguishes_types_and_hides_the_value() -> None:
    fp_str = d.fingerprint(KEY, "1")
    fp_num = d.fingerprint(KEY, d.parse("1"))
    assert fp_str != fp_num
    assert len(fp_str) == 64 and fp_str != "1"
    assert d.fingerprint(KEY, "secret") == d.fingerprint(KEY, "secret")
    assert d.fingerprint(b"other", "secret") != d.fingerprint(KEY, "secret")


def test_apply_sets_deletes_and_keeps_everything_else() -> None:
    doc = d.parse('{"dev": {"s": {"a": 1.50, "b": "x"}}, "main": {"s": {"a": "y"}}}')
    new = cs.apply(
        doc,
        [
            cs.Edit("set", "dev", "s", "b", "new"),
            cs.Edit("delete", "main", "s", "a"),
            cs.Edit("set", "uat", "t", "k", "v"),
        ],
    )
    assert d.serialise(new) == (
        '{"dev":{"s":{"a":1.50,"b":"new"}},"main":{"s":{}},"uat":{"t":{"k":"v"}}}'
    )
    assert d.serialise(doc) == '{"dev":{"s":{"a":1.50,"b":"x"}},"main":{"s":{"a":"y"}}}'


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (cs.Edit("delete", "dev", "s", "missing"), "does not exist"),
        (cs.Edit("delete", "nope", "s", "a"), "does not exist"),
        (cs.Edit("set", "dev", "s", " padded", "v"), "leading or trailing"),
        (cs.Edit("remove_environment", "nope"), "does not exist"),
    ],
)
def test_apply_refuses_impossible_edits_with_a_message(edit: cs.Edit, message: str) -> None:
    with pytest.raises(cs.ChangesetError, match=message):
        cs.apply(d.parse('{"dev": {"s": {"a": "1"}}}'), [edit])


def test_diff_classifies_added_removed_changed_and_type_changed() -> None:
    before = d.parse('{"dev": {"s": {"a": "1", "b": "2", "c": "3"}}}')
    after = d.parse('{"dev": {"s": {"a": "1", "b": "20", "c": 3, "d": "4"}}}')
    statuses = {(c.key, c.status) for c in df.diff(before, after)}
    assert statuses == {("b", "changed"), ("c", "type_changed"), ("d", "added")}
    assert {(c.key, c.status) for c in df.diff(after, before)} == {
        ("b", "changed"),
        ("c", "type_changed"),
        ("d", "removed"),
    }


def test_restore_changeset_restores_one_environment_only() -> None:
    old = d.parse('{"dev": {"s": {"a": "1"}}, "main": {"s": {"a": "m1"}}}')
    current = d.parse('{"dev": {"s": {"a": "2", "b": "x"}, "t": {}}, "main": {"s": {"a": "m2"}}}')
    restored = cs.apply(current, cs.restore_changeset(current, old, "dev"))
    assert restored["dev"] == old["dev"]
    assert restored["main"] == current["main"]


# ----------------------------------------------------------------------------------------
# Property tests

names = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=6
).filter(lambda n: d.name_problem(n) is None)
leaves = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
)
docs = st.dictionaries(
    names,
    st.dictionaries(names, st.dictionaries(names, leaves, max_size=4), max_size=3),
    max_size=3,
)


@st.composite
def doc_and_changeset(draw: Any) -> tuple[dict[str, Any], list[cs.Edit]]:
    doc = d.parse(json.dumps(draw(docs)))
    cells_ = list(d.cells(doc))
    edits: list[cs.Edit] = []
    for _ in range(draw(st.integers(0, 6))):
        if cells_ and draw(st.booleans()):
            c = draw(st.sampled_from(cells_))
            if draw(st.booleans()):
                edits.append(
                    cs.Edit("set", c.environment, c.service, c.key, draw(st.text(max_size=5)))
                )
            elif not any(e.cell == (c.environment, c.service, c.key) for e in edits):
                edits.append(cs.Edit("delete", c.environment, c.service, c.key))
        else:
            edits.append(
                cs.Edit("set", draw(names), draw(names), draw(names), draw(st.text(max_size=5)))
            )
    return doc, edits


@settings(max_examples=200, deadline=None)
@given(doc_and_changeset())
def test_apply_changes_exactly_the_cells_in_the_changeset(case: Any) -> None:
    doc, edits = case
    new = cs.apply(doc, edits)
    touched = {e.cell for e in edits}
    before = {(c.environment, c.service, c.key): d.serialise(c.value) for c in d.cells(doc)}
    after = {(c.environment, c.service, c.key): d.serialise(c.value) for c in d.cells(new)}
    for cell, value in before.items():
        if cell not in touched:
            assert after[cell] == value  # untouched: same value, same type, same text
    final = {}
    for e in edits:
        final[e.cell] = e
    for cell, e in final.items():
        if e.op == "set":
            assert after[cell] == d.serialise(e.value)
        else:
            assert cell not in after
    # Key order of untouched environments is kept.
    for env in doc:
        if not any(e.environment == env for e in edits):
            assert list(new[env]) == list(doc[env])
    # Re-parsing the serialisation gives the same document.
    assert d.serialise(d.parse(d.serialise(new))) == d.serialise(new)


@settings(max_examples=150, deadline=None)
@given(docs, docs)
def test_diff_then_restore_reproduces_each_environment(a: Any, b: Any) -> None:
    old, current = d.parse(json.dumps(a)), d.parse(json.dumps(b))
    for env in set(old) | set(current):
        restored = cs.apply(current, cs.restore_changeset(current, old, env))
        assert df.diff(old, restored, environment=env) == []
        for other in current:
            if other != env:
                assert d.serialise(restored[other]) == d.serialise(current[other])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_classify_never_raises_on_arbitrary_text(text: str) -> None:
    result = d.classify(text)
    assert result.conforming == (result.reasons == ())


# ----------------------------------------------------------------------------------------
# Comparing environments


def _fp(value: Any) -> str:
    return d.fingerprint(KEY, value)


def test_compare_classifies_every_leaf_type() -> None:
    same = {
        "str": "x",
        "num": 1.5,
        "int": 7,
        "bool": True,
        "null": None,
        "obj": {"a": [1]},
        "arr": [1, 2],
    }
    dev = {"str_vs_num": "1", "diff_str": "a", "diff_num": 1, "diff_bool": True}
    dev |= {"diff_obj": {"a": 1}, "diff_arr": [1], "only_dev": None}
    main = {"str_vs_num": 1, "diff_str": "b", "diff_num": 1.0, "diff_bool": False}
    main |= {"diff_obj": {"a": 2}, "diff_arr": [2], "only_main": False}
    doc = d.parse(
        json.dumps(
            {
                "dev": {"s": same | dev, "dev_service": {"k": "v"}},
                "main": {"s": same | main},
            }
        )
    )
    rows = df.compare_environments(doc, "dev", "main", fingerprint=_fp)
    status = {(r.service, r.key): r.status for r in rows}
    for same in ("str", "num", "int", "bool", "null", "obj", "arr"):
        assert status[("s", same)] == "same", same
    assert status[("s", "str_vs_num")] == "different_type"
    for key in ("diff_str", "diff_num", "diff_bool", "diff_obj", "diff_arr"):
        assert status[("s", key)] == "different", key  # 1 and 1.0 are different JSON texts
    assert status[("s", "only_dev")] == "only_a"
    assert status[("s", "only_main")] == "only_b"
    assert status[("dev_service", "k")] == "only_a"
    only_main = next(r for r in rows if r.key == "only_main")
    assert (only_main.type_a, only_main.type_b, only_main.fingerprint_a) == ("", "boolean", "")
    counts = df.count_comparisons(rows)
    assert counts == {
        "only_a": 2,
        "only_b": 1,
        "same": 7,
        "different": 5,
        "different_type": 1,
    }


def test_compare_keeps_no_value_only_types_and_fingerprints() -> None:
    doc = d.parse('{"dev": {"s": {"k": "CANARY-x"}}, "main": {"s": {"k": "CANARY-y"}}}')
    rows = df.compare_environments(doc, "dev", "main", fingerprint=_fp)
    assert "CANARY" not in repr(rows)


def test_compare_with_absent_or_same_environment_and_odd_names() -> None:
    doc = d.parse('{"my env": {"se rvice!": {"KEY": "1", "key": "1"}}, "empty": {}}')
    rows = df.compare_environments(doc, "my env", "nope", fingerprint=_fp)
    assert [(r.key, r.status) for r in rows] == [("KEY", "only_a"), ("key", "only_a")]
    assert all(
        r.status == "same"
        for r in df.compare_environments(doc, "my env", "my env", fingerprint=_fp)
    )
    assert df.compare_environments(doc, "empty", "nope", fingerprint=_fp) == []


def test_grid_missing_counts_per_environment() -> None:
    doc = d.parse('{"dev": {"s": {"a": "1", "b": "2"}}, "main": {"s": {"a": "1"}}, "uat": {}}')
    assert d.grid(doc).missing_counts() == {"dev": 0, "main": 1, "uat": 2}


@settings(max_examples=200, deadline=None)
@given(docs, st.data())
def test_fingerprint_comparison_equals_value_comparison(raw: Any, data: Any) -> None:
    """Comparing by fingerprint gives exactly what comparing the values themselves gives."""
    doc = d.parse(json.dumps(raw))
    envs = [*doc, "absent"]
    a, b = data.draw(st.sampled_from(envs)), data.draw(st.sampled_from(envs))
    by_fingerprint = {
        (r.service, r.key): r.status for r in df.compare_environments(doc, a, b, fingerprint=_fp)
    }
    # The oracle: the document diff of the two environments' values, mapped onto our statuses.
    mapping = {"removed": "only_a", "added": "only_b", "changed": "different"}
    mapping["type_changed"] = "different_type"
    by_value = {
        (c.service, c.key): mapping[c.status]
        for c in df.diff({"e": doc.get(a, {})}, {"e": doc.get(b, {})})
    }
    assert {k: v for k, v in by_fingerprint.items() if v != "same"} == by_value
    present = {(s, k) for env in {a, b} for s, keys in doc.get(env, {}).items() for k in keys}
    assert set(by_fingerprint) == present


# Every op, and the rebase rule of the write protocol


@st.composite
def changeset_on(draw: Any, doc: dict[str, Any]) -> list[cs.Edit]:
    """A random valid changeset of every op, drawn against ``doc`` as it evolves."""
    work = cs.apply(doc, [])
    edits: list[cs.Edit] = []
    for _ in range(draw(st.integers(0, 5))):
        cells_ = list(d.cells(work))
        services_ = [(e, s) for e in work for s in work[e]]
        op = draw(
            st.sampled_from(
                [
                    "set",
                    "set_new",
                    "delete",
                    "add_service",
                    "remove_service",
                    "add_env",
                    "remove_env",
                ]
            )
        )
        if op == "set" and cells_:
            c = draw(st.sampled_from(cells_))
            edit = cs.Edit("set", c.environment, c.service, c.key, draw(st.text(max_size=4)))
        elif op == "delete" and cells_:
            c = draw(st.sampled_from(cells_))
            edit = cs.Edit("delete", c.environment, c.service, c.key)
        elif op == "remove_service" and services_:
            env, service = draw(st.sampled_from(services_))
            edit = cs.Edit("remove_service", env, service)
        elif op == "remove_env" and work:
            edit = cs.Edit("remove_environment", draw(st.sampled_from(list(work))))
        elif op == "add_service":
            edit = cs.Edit("add_service", draw(names), draw(names))
        elif op == "add_env":
            edit = cs.Edit("add_environment", draw(names))
        else:
            edit = cs.Edit("set", draw(names), draw(names), draw(names), draw(st.text(max_size=4)))
        try:
            work = cs.apply(work, [edit])
        except cs.ChangesetError:
            continue  # e.g. a drawn name that is a leaf elsewhere; not a valid edit here
        edits.append(edit)
    return edits


def _all_cells(*docs: Any) -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for doc in docs:
        for env, services_ in doc.items():
            out.add((env, "", ""))
            for service, keys in services_.items():
                out.add((env, service, ""))
                out.update((env, service, k) for k in keys)
    return out


def _covered(cell: tuple[str, str, str], touched: set[tuple[str, str, str]]) -> bool:
    """A cell is covered by a touched cell at or above it; a service or environment node also by
    any touched cell below it (``set`` creates the containers it writes into)."""
    env, service, key = cell
    if cell in touched or (env, service, "") in touched or (env, "", "") in touched:
        return True
    if not key:
        return any(t[0] == env and (not service or t[1] == service) for t in touched)
    return False


def _at(doc: Any, cell: tuple[str, str, str]) -> Any:
    present, value = d.lookup(doc, cell)
    return (present, d.serialise(value) if present and cell[2] else None)


@st.composite
def doc_with_changeset(draw: Any) -> tuple[dict[str, Any], list[cs.Edit]]:
    doc = d.parse(json.dumps(draw(docs)))
    return doc, draw(changeset_on(doc))


@settings(max_examples=300, deadline=None)
@given(doc_with_changeset())
def test_every_op_changes_only_the_cells_it_touches(case: Any) -> None:
    doc, edits = case
    new = cs.apply(doc, edits)
    touched = cs.touched_cells(doc, edits) | cs.touched_cells(new, edits)
    for cell in _all_cells(doc, new):
        if not _covered(cell, touched):
            assert _at(doc, cell) == _at(new, cell), cell  # same presence, value, type
    for env in doc:
        if env in new and not any(e.environment == env for e in edits):
            assert list(new[env]) == list(doc[env])  # key order kept


@st.composite
def concurrent_edits(draw: Any) -> tuple[Any, list[cs.Edit], list[cs.Edit]]:
    base = d.parse(json.dumps(draw(docs)))
    return base, draw(changeset_on(base)), draw(changeset_on(base))


@settings(max_examples=400, deadline=None)
@given(concurrent_edits())
def test_rebase_without_conflict_loses_no_update(case: Any) -> None:
    """Theirs landed first; when no cell conflicts, yours rebased onto theirs keeps both."""
    base, theirs_edits, yours_edits = case
    theirs = cs.apply(base, theirs_edits)
    yours = cs.apply(base, yours_edits)
    if cs.conflicting_cells(base, theirs, yours_edits):
        return
    merged = cs.apply(theirs, cs.rebase_changeset(theirs, yours_edits))
    for cell in _all_cells(base, theirs, yours):
        mine_changed = _at(base, cell) != _at(yours, cell)
        their_changed = _at(base, cell) != _at(theirs, cell)
        if mine_changed and cell[2]:
            assert _at(merged, cell) == _at(yours, cell), ("mine lost", cell)
        elif their_changed and cell[2]:
            assert _at(merged, cell) == _at(theirs, cell), ("theirs lost", cell)


def test_conflicting_cells_names_the_cell_both_changed() -> None:
    base = d.parse('{"dev": {"s": {"a": "1", "b": "2"}}}')
    theirs = cs.apply(base, [cs.Edit("set", "dev", "s", "a", "theirs")])
    assert cs.conflicting_cells(base, theirs, [cs.Edit("set", "dev", "s", "a", "yours")]) == [
        ("dev", "s", "a")
    ]
    assert cs.conflicting_cells(base, theirs, [cs.Edit("set", "dev", "s", "b", "yours")]) == []
    assert cs.conflicting_cells(base, theirs, [cs.Edit("set", "dev", "s", "a", "theirs")]) == []
    assert cs.conflicting_cells(base, theirs, [cs.Edit("remove_service", "dev", "s")]) == [
        ("dev", "s", "a")
    ]
    assert cs.conflicting_cells(
        base, theirs, [cs.Edit("set", "dev", "s", "b", "y")], whole_environments=["dev"]
    ) == [("dev", "s", "a")]
