"""The grid's rows (built in Python by ``{% grid_rows %}``) and the reveal buttons they carry."""

from __future__ import annotations

import json
from html import unescape
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws
from secrets_admin.models import SecretSummary

pytestmark = pytest.mark.django_db

ODD_DOC = {
    "dev": {'<b>"pay&co"</b>': {"it's <key>": "CANARY-odd-1d2e", "plain": 42}},
    "main": {'<b>"pay&co"</b>': {"plain": 43}},
}


def _grid(client: Any, name: str = "odd-secrets") -> str:
    response = client.get(reverse("secrets_admin:secret_detail", args=[name]))
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def test_names_are_escaped_and_values_never_shown(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    html = _grid(as_user(engineer))
    assert "<b>" not in html and "&lt;b&gt;&quot;pay&amp;co&quot;&lt;/b&gt;" in html
    assert "it&#x27;s &lt;key&gt;" in html
    assert "CANARY" not in html
    assert html.count("missing</span>") == 1  # main has no "it's <key>"


def test_each_reveal_button_names_its_cell_and_the_form_carries_the_version(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    html = _grid(as_user(engineer))
    version = aws.read_current("odd-secrets").version_id
    assert html.count(f'name="version_id" value="{version}"') == 1
    refs = [
        json.loads(unescape(chunk.split('"', 1)[0]))
        for chunk in html.split('name="cell" value="')[1:]
    ]
    assert refs == [
        ["dev", '<b>"pay&co"</b>', "it's <key>"],
        ["dev", '<b>"pay&co"</b>', "plain"],
        ["main", '<b>"pay&co"</b>', "plain"],
    ]


def test_auditor_grid_has_no_reveal_buttons_or_token(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    html = _grid(as_user(auditor))
    assert 'name="cell"' not in html and 'name="version_id"' not in html


def test_reveal_by_cell_reference_returns_that_value(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    version = aws.read_current("odd-secrets").version_id
    response = as_user(engineer).post(
        reverse("secrets_admin:cell_reveal", args=["odd-secrets"]),
        {"version_id": version, "cell": json.dumps(["dev", '<b>"pay&co"</b>', "it's <key>"])},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == HTTPStatus.OK
    assert "CANARY-odd-1d2e" in response.content.decode()


@pytest.mark.parametrize("cell", ["not json", '["dev", "only two"]', '{"a": 1}', "[1, 2, 3]"])
def test_malformed_cell_reference_is_a_bad_request(
    as_user: Any, engineer: Any, make_secret: Any, cell: str
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    version = aws.read_current("odd-secrets").version_id
    response = as_user(engineer).post(
        reverse("secrets_admin:cell_reveal", args=["odd-secrets"]),
        {"version_id": version, "cell": cell},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"CANARY" not in response.content


def test_viewing_the_same_version_again_keeps_its_summary(
    as_user: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    client = as_user(auditor)
    _grid(client)
    first = SecretSummary.objects.get(name="odd-secrets")
    _grid(client)
    again = SecretSummary.objects.get(name="odd-secrets")
    assert again.updated == first.updated  # no rewrite for a version already summarised
    assert again.environments == ["dev", "main"] and again.kind == "conforming"


def _calls() -> list[str]:
    calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: calls.append(model.name)
    )
    return calls


def _new_version(sm: Any, name: str, doc: dict[str, Any]) -> str:
    """A new current version through the compare-and-swap path (never a plain put)."""
    base = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
    new = sm.put_secret_value(
        SecretId=name, SecretString=json.dumps(doc), VersionStages=["PORTAL-TEST"]
    )["VersionId"]
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=new, RemoveFromVersionId=base
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="PORTAL-TEST", RemoveFromVersionId=new
    )
    return str(new)


def test_grid_of_an_already_seen_version_costs_one_describe(
    as_user: Any, engineer: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("odd-secrets", ODD_DOC)
    client = as_user(engineer)
    first = _grid(client)
    calls = _calls()
    again = _grid(client)
    assert calls == ["DescribeSecret"]
    assert again.count('name="cell"') == first.count('name="cell"') == 3

    changed = {**ODD_DOC, "uat": {"svc": {"k": "CANARY-new-77aa"}}}
    version = _new_version(sm, "odd-secrets", changed)
    calls.clear()
    html = _grid(client)
    assert sorted(calls) == ["DescribeSecret", "GetSecretValue"]
    assert f'value="{version}"' in html and "uat" in html and "CANARY" not in html


def test_cached_grid_holds_fingerprints_never_values(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    import pickle

    from django.core.cache import cache

    from secrets_admin import reads

    make_secret("odd-secrets", ODD_DOC)
    _grid(as_user(engineer))
    version = aws.read_current("odd-secrets").version_id
    shape = cache.get(reads._shape_key("odd-secrets", version))
    assert isinstance(shape, reads.GridShape) and shape.classified.document is None
    assert b"CANARY" not in pickle.dumps(shape)
