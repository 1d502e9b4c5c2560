"""Templates get view models only: the context a secret's pages render (the grid, the editor,
its review, the bulk paste form, compare, integration, history) holds names, types,
fingerprints and states, never the parsed document (no ``documents.Classified``, no
``protocol.Version``, no dict of the secret, no stored value)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws, documents
from secrets_admin.changes import protocol
from secrets_admin.forms import field_name

pytestmark = pytest.mark.django_db

NAME = "canary-pages-secrets"
CANARY = "CANARY-context-5d1e"
DOC = {
    "sandbox": {"stripe": {"secret_key": CANARY + "-sb", "port": 5432}},
    "dev": {"stripe": {"secret_key": CANARY + "-dev", "nested": {"deep": CANARY + "-deep"}}},
    "main": {"stripe": {"secret_key": CANARY + "-main"}},
}
PARSED = [DOC, *DOC.values(), *(s for env in DOC.values() for s in env.values())]


def _reachable(obj: Any, path: str, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """``obj`` and what it holds: fields of dataclasses and of the portal's own objects,
    items of mappings and sequences (other objects, such as the request, are not entered)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield path, obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        children: Iterator[tuple[str, Any]] = (
            (f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)
        )
    elif isinstance(obj, Mapping):
        children = ((repr(k), v) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        children = ((str(i), v) for i, v in enumerate(obj))
    elif type(obj).__module__.startswith("secrets_admin") and hasattr(obj, "__dict__"):
        children = iter(vars(obj).items())
    else:
        return
    for name, child in children:
        yield from _reachable(child, f"{path}.{name}", seen)


def assert_view_models_only(response: Any) -> None:
    assert response.status_code == HTTPStatus.OK, response.content[:300]
    contexts = list(response.context)
    assert contexts, "the test client captured no template context"
    seen: set[int] = set()
    for context in contexts:
        for key, value in context.flatten().items():
            for path, obj in _reachable(value, key, seen):
                assert not isinstance(obj, documents.Classified), path
                assert not isinstance(obj, protocol.Version), path
                assert not (isinstance(obj, dict) and any(obj == d for d in PARSED)), path
                assert not (isinstance(obj, str) and CANARY in obj), path


@pytest.fixture
def client(as_user: Any, engineer: Any, make_secret: Any) -> Any:
    make_secret(NAME, DOC)
    return as_user(engineer)


@pytest.mark.parametrize(
    ("view", "query"),
    [
        ("secret_detail", {}),
        ("secret_edit", {}),
        ("secret_bulk_paste", {}),
        ("environment_diff", {"a": "dev", "b": "main"}),
        ("secret_integration", {}),
        ("secret_history", {}),
    ],
)
def test_a_secret_page_renders_view_models_not_the_parsed_document(
    client: Any, view: str, query: dict[str, str]
) -> None:
    assert_view_models_only(client.get(reverse(f"secrets_admin:{view}", args=[NAME]), query))


def test_the_editor_review_renders_view_models_not_the_parsed_document(client: Any) -> None:
    response = client.post(
        reverse("secrets_admin:secret_edit_review", args=[NAME]),
        {
            "base_version_id": aws.read_current(NAME).version_id,
            field_name("set", "sandbox", "stripe", "secret_key"): "typed-new-value",
        },
    )
    assert b"Review changes" in response.content
    assert_view_models_only(response)
    assert response.context["preview"].cells  # the review really shows a changed cell
