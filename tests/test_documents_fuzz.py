"""Fuzz tests (hypothesis) of the document parser, classification and changesets (ASVS 5.0
V2.2 input validation). They feed JSON-like garbage, mutated JSON, any JSON value and any edit, and check that
only the documented errors come out and that nothing untouched changes.

Found so far: text nested deeper than Python's recursion limit raised ``RecursionError`` from
``classify`` (a 500 on the grid); ``parse`` now refuses nesting beyond ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from secrets_admin import changesets as cs
from secrets_admin import diffs as df
from secrets_admin import documents as d

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON text as it could be typed, pasted or truncated: tokens of JSON in any order.
json_tokens = st.sampled_from(
    [
        "{", "}", "[", "]", ":", ",", '"', '"a"', '"dev"', '"\\u00e9"', '"\\ud800"', '"\\x"',
        "0", "-0", "1.10", "1e400", "-1E-7", "01", "1.", ".5", "true", "false", "null", "NaN",
        "Infinity", " ", "\n", "\t", "\u2028", "\x00", "é", "//", "/*", "'",
    ]
)  # fmt: skip
json_like = st.lists(json_tokens, max_size=40).map("".join)

numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["1.10", "0.0", "-0", "1e400", "-1E-7", "2.5e+3", "123456789012345678901234"]),
)
names = st.text(max_size=6)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers.map(d.JsonNumber), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=25,
)
small_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers.map(d.JsonNumber), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(names, inner, max_size=2)),
    max_leaves=4,
)


def _mutations(text: str) -> st.SearchStrategy[str]:
    positions = st.integers(0, len(text))
    return st.one_of(
        positions.map(lambda i: text[:i]),  # truncated
        st.tuples(positions, json_tokens).map(lambda p: text[: p[0]] + p[1] + text[p[0] :]),
        st.tuples(positions, positions).map(lambda p: text[: p[0]] + text[p[1] :]),
    )


@FUZZ
@given(json_like)
@example("[" * 100_000)
@example('{"dev": {"s": {"k": ' + "[" * 2000 + "]" * 2000 + "}}}")
@example('{"a": 1, "a": 2}')
def test_parse_raises_only_value_error_and_classify_never_raises(text: str) -> None:
    try:
        document = d.parse(text)
    except ValueError:
        document = None
    else:
        assert d.serialise(d.parse(d.serialise(document))) == d.serialise(document)
    result = d.classify(text)
    assert result.conforming == (result.reasons == ())
    assert (result.document is None) is (document is None)


@FUZZ
@given(json_values.flatmap(lambda v: _mutations(d.serialise(v))))
def test_classify_never_raises_on_mutated_json(text: str) -> None:
    result = d.classify(text)
    assert result.kind in ("conforming", "non_standard", "not_json", "empty")
    assert result.size_bytes == len(text.encode())


@FUZZ
@given(json_values)
def test_any_json_value_round_trips_exactly(value: Any) -> None:
    text = d.serialise(value)
    parsed = d.parse(text)
    assert d.serialise(parsed) == text  # numbers keep their text, keys their order
    assert json.loads(text) == json.loads(d.serialise(parsed))


OPS = ["set", "delete", "add_service", "remove_service", "add_environment", "remove_environment"]
edits = st.builds(
    cs.Edit,
    op=st.sampled_from([*OPS, "rename"]),
    environment=names,
    service=names,
    key=names,
    value=small_values,
)
# Documents as a secret may hold them: conforming or not (levels of any JSON type).
documents = st.dictionaries(
    names,
    st.one_of(small_values, st.dictionaries(names, st.one_of(small_values, st.dictionaries(names, small_values)))),
    max_size=4,
)  # fmt: skip
good_names = names.filter(lambda n: d.name_problem(n) is None)
conforming = st.dictionaries(
    good_names,
    st.dictionaries(good_names, st.dictionaries(good_names, small_values, max_size=3), max_size=3),
    min_size=1,
    max_size=3,
)


def _cell_values(document: Any) -> dict[tuple[str, str, str], str]:
    return {(c.environment, c.service, c.key): d.serialise(c.value) for c in d.cells(document)}


@FUZZ
@given(st.one_of(documents, conforming), st.lists(edits, max_size=6))
def test_apply_raises_only_changeset_error_and_never_touches_its_input(
    document: dict[str, Any], changeset: list[cs.Edit]
) -> None:
    before = d.serialise(document)
    try:
        new = cs.apply(document, changeset)
    except cs.ChangesetError as exc:
        assert str(exc)
        return
    finally:
        assert d.serialise(document) == before
    assert d.serialise(d.parse(d.serialise(new))) == d.serialise(new)
    if not list(d.structure_problems(document)):
        touched = cs.touched_cells(document, changeset)
        after = _cell_values(new)
        for cell, value in _cell_values(document).items():
            if cell not in touched:
                assert after[cell] == value


@FUZZ
@given(conforming, conforming)
def test_diff_and_restore_never_raise_on_conforming_documents(a: Any, b: Any) -> None:
    for env in {*a, *b}:
        restored = cs.apply(b, cs.restore_changeset(b, a, env))
        assert df.diff(a, restored, environment=env) == []


@pytest.mark.parametrize("depth", [d.MAX_DEPTH + 1, 999, 1001, 50_000])
def test_deep_nesting_is_refused_with_a_reason(depth: int) -> None:
    text = '{"dev": {"s": {"k": ' + "[" * depth + "]" * depth + "}}}"
    result = d.classify(text)
    assert result.kind == "not_json"
    assert f"nested more than {d.MAX_DEPTH} levels" in result.reasons[0]


def test_nesting_up_to_the_limit_is_kept() -> None:
    inner = "[" * (d.MAX_DEPTH - 3) + "1" + "]" * (d.MAX_DEPTH - 3)
    text = '{"dev":{"s":{"k":' + inner + "}}}"
    result = d.classify(text)
    assert result.conforming
    assert d.serialise(result.document) == text
