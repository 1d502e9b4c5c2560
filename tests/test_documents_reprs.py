"""Every public type of the document logic that can hold a value prints its structure only.

The portal's first rule: a secret value never leaves Secrets Manager except in the response
to a permitted reveal - not in logs, tracebacks or exception text, which is where ``repr()`` and
``str()`` end up. Each type is built from a document whose every value is a canary.
"""

from __future__ import annotations

from typing import Any

import pytest

from secrets_admin import changesets as cs
from secrets_admin import diffs as df
from secrets_admin import documents as d

CANARY = "CANARY-doc-7f3a"
CANARY_NUMBER = "314159265358979"

CANARY_TEXT = (
    '{"dev": {"api": {"token": "CANARY-doc-7f3a", "port": 314159265358979,'
    ' "nested": {"inner": ["CANARY-doc-7f3a"]}}},'
    ' "main": {"api": {"token": "CANARY-doc-7f3a-main"}}}'
)
OTHER_TEXT = '{"dev": {"api": {"token": 1}}, "main": {}}'


def _assert_value_free(obj: Any) -> None:
    for shown in (repr(obj), str(obj)):
        assert CANARY not in shown
        assert CANARY_NUMBER not in shown


#: Cells of CANARY_TEXT: a string, a number, a nested object, a service node.
CANARY_CELLS = [
    ("dev", "api", "token"),
    ("dev", "api", "port"),
    ("dev", "api", "nested"),
    ("main", "api", ""),
]


def _hmac(value: Any) -> str:
    return d.fingerprint(b"test-key", value)


def _built_from_canary() -> list[tuple[str, Any]]:
    document = d.parse(CANARY_TEXT)
    other = d.parse(OTHER_TEXT)
    grid = d.grid(document)
    return [
        ("Classified conforming", d.classify(CANARY_TEXT)),
        ("Classified non_standard", d.classify('{"dev": {"api": ["CANARY-doc-7f3a"]}}')),
        ("Classified top-level string", d.classify('"CANARY-doc-7f3a"')),
        ("Cell", list(d.cells(document))),
        ("Grid", grid),
        ("GridRow", grid.rows),
        ("Edit", cs.restore_changeset(other, document, "dev")),
        ("CellDelta", df.diff(other, document)),
        ("CellDelta fingerprinted", df.diff(other, document, fingerprint=_hmac)),
        (
            "CellState",
            [d.cell_state(document, c, fingerprint=_hmac) for c in CANARY_CELLS],
        ),
        ("StructureChange", cs.structure_changes(other, document)),
        (
            "Comparison",
            df.compare_environments(document, "dev", "main", fingerprint=lambda v: "f" * 64),
        ),
    ]


@pytest.mark.parametrize(
    ("label", "obj"), _built_from_canary(), ids=[label for label, _ in _built_from_canary()]
)
def test_type_built_from_a_canary_document_prints_no_value(label: str, obj: Any) -> None:
    assert obj, label  # the type was really built (not an empty list)
    _assert_value_free(obj)
    if isinstance(obj, list):
        for item in obj:
            _assert_value_free(item)


def test_reprs_still_show_the_structure() -> None:
    cell = next(iter(d.cells(d.parse(CANARY_TEXT))))
    assert repr(cell) == "Cell(environment='dev', service='api', key='token')"
    row = d.grid(d.parse(CANARY_TEXT)).rows[0]
    assert repr(row) == "GridRow(service='api', key='token', environments=['dev', 'main'])"
    assert "kind='conforming'" in repr(d.classify(CANARY_TEXT))


def test_errors_raised_on_a_canary_document_name_no_value() -> None:
    with pytest.raises(d.DuplicateKeyError) as duplicate:
        d.parse('{"dev": {"api": {"k": "CANARY-doc-7f3a", "k": "CANARY-doc-7f3a"}}}')
    _assert_value_free(duplicate.value)
    document = d.parse('{"dev": {"api": "CANARY-doc-7f3a"}}')
    with pytest.raises(cs.ChangesetError) as refused:
        cs.apply(document, [cs.Edit("set", "dev", "api", "k", "x")])
    _assert_value_free(refused.value)


def test_the_one_delta_type_holds_no_value_only_names_types_and_fingerprints() -> None:
    """:class:`diffs.CellDelta` (every review, save, change request and paste shows it) keeps no
    value at all, not only out of its repr: names, a status and two value-free sides."""
    deltas = df.diff(d.parse(OTHER_TEXT), d.parse(CANARY_TEXT), fingerprint=_hmac)
    assert {(c.key, c.status) for c in deltas} == {
        ("token", "type_changed"),
        ("port", "added"),
        ("nested", "added"),
        ("token", "added"),
    }
    for delta in deltas:
        sides = (delta.before, delta.after)
        assert all(isinstance(side, d.CellState) for side in sides)
        assert all(isinstance(getattr(delta, f), str) for f in ("environment", "service", "key"))
        assert all(isinstance(getattr(s, f), str) for s in sides for f in ("type", "fingerprint"))
        _assert_value_free(delta)
        _assert_value_free(delta.as_detail())
    token = next(c for c in deltas if c.environment == "dev" and c.key == "token")
    assert token.label == "type: number → string"
    assert token.as_detail() == {
        "environment": "dev",
        "service": "api",
        "key": "token",
        "status": "type_changed",
        "before": _hmac(d.JsonNumber("1")),
        "after": _hmac(CANARY),
    }
