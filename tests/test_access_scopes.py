"""The access matrix for scoped personas (README "Access rules"; ASVS 5.0 8.2.2).

Every row of :data:`tests.test_access_matrix.MATRIX` for the portal's own URLs, as an engineer, an
approver and an auditor of team A (``tests/conftest.py``), against a team-A secret, a team-B
secret and an untagged one (each with its own open change request):

* on team A's secret a scoped persona gets exactly what the global persona of the same role gets;
* on the others, every URL naming the secret or its change request answers 404 - whatever the
  method or role - as for a secret that does not exist (never 403: names do not leak);
* URLs naming no secret (list, compliance, audit log, ...) answer as for the global persona:
  what they show is narrowed to the scope (``tests/test_scope_canary.py`` proves it).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import audit, aws
from secrets_admin.changes import change_requests, protocol
from secrets_admin.changesets import Edit
from secrets_admin.permissions import Role, set_role

from .conftest import STANDARD_DOC, TEAM_A, TEAM_B
from .test_access_matrix import (
    CR,
    FORBIDDEN,
    FOUND,
    MATRIX,
    NOT_FOUND,
    OK,
    SECRET,
    Expect,
    Row,
    _form,
)

pytestmark = pytest.mark.django_db

#: Scoped persona fixture -> the global persona whose answers it gets on its own team's secret.
SCOPED = {
    "team_a_engineer": "engineer",
    "team_a_approver": "approver",
    "team_a_auditor": "auditor",
}
#: Which secret the row's ``{secret}`` and ``{change_request}`` stand for: its tag (None: none).
WORLDS = {"team-a": TEAM_A, "team-b": TEAM_B, "untagged": None}
NAMES = {"team-a": "alpha-secrets", "team-b": "bravo-secrets", "untagged": "plain-secrets"}

PORTAL_ROWS = [r for r in MATRIX if r.name.startswith("secrets_admin:")]


def _names_a_secret(entry: Row) -> bool:
    return any(a in (SECRET, CR) for a in entry.args)


def expected(entry: Row, persona: str, world: str) -> Expect:
    """The answer ``persona`` must get for ``entry`` on ``world``'s secret."""
    if world != "team-a" and _names_a_secret(entry):
        return NOT_FOUND
    return entry.expect[SCOPED[persona]]


CASES = [
    (entry, persona, world)
    for entry in PORTAL_ROWS
    for persona in SCOPED
    # Rows that name no secret of the world answer the same in each: checked once.
    for world in (WORLDS if entry.uses_world else ["team-a"])
]

#: URL x persona x secret cells checked by test_scoped_access.
SCOPED_MATRIX_CELLS = len(CASES)


@pytest.fixture
def build_world(make_secret: Any, django_user_model: Any) -> Any:
    """Make a world: the team-A, team-B and untagged secrets, and for ``kind``'s secret its
    version and (when ``with_request``) an open change request proposed by a global engineer."""

    def build(kind: str, *, with_request: bool) -> dict[str, str]:
        for other, name in NAMES.items():
            tag = WORLDS[other]
            make_secret(name, STANDARD_DOC, Tags=[{"Key": "team", "Value": tag}] if tag else [])
        make_secret("legacy-app-dev", "{}")
        name = NAMES[kind]
        version = aws.read_current(name).version_id
        world = {"secret": name, "version": version}
        if with_request:
            proposer = django_user_model.objects.create_user(username="pat-proposer")
            set_role(proposer, [Role.ENGINEER])
            cr = change_requests.change_request_propose(
                name=name,
                base_version_id=version,
                changeset=[Edit("set", "main", "stripe", "secret_key", "sk_live_2")],
                context=audit.Context(user=proposer),
                change_id=protocol.new_change_id(user=proposer, name=name, base_version_id=version),
            )
            world["change_request"] = str(cr.pk)
            world["reviewed"] = change_requests.change_request_reviewed_token(cr, version)
        return world

    return build


@pytest.mark.parametrize(
    ("entry", "persona", "world"), CASES, ids=[f"{e.id} as {p} on {w}" for e, p, w in CASES]
)
def test_scoped_access(
    entry: Row, persona: str, world: str, team_rules: Any, client: Any, request: Any
) -> None:
    made: dict[str, str] = {}
    if entry.uses_world:
        made = request.getfixturevalue("build_world")(world, with_request=CR in entry.args)
    client.force_login(request.getfixturevalue(persona))
    url = reverse(entry.name, args=[a.format(**made) for a in entry.args])
    data = {k: v.format(**made) for k, v in entry.data.items()}
    headers = {"HX-Request": "true"} if entry.htmx else {}
    if entry.method == "GET":
        response = client.get(url, data, headers=headers)
    else:
        response = client.generic(
            entry.method, url, _form(data), "application/x-www-form-urlencoded", headers=headers
        )
    where = f"{entry.id} as {persona} on {world}"
    assert response.status_code == expected(entry, persona, world), where
    if response.status_code == FOUND and entry.method == "POST":
        assert not response["Location"].startswith(reverse("account_login")), where


def test_role_is_checked_on_the_urls_secret_not_anywhere(
    build_world: Any, team_rules: Any, django_user_model: Any, client: Any
) -> None:
    """An auditor of team A who is an engineer of team B may edit B's secret, not A's."""
    from secrets_admin.permissions import set_idp_groups

    world = build_world("team-a", with_request=True)
    both = django_user_model.objects.create_user(username="ben")
    set_idp_groups(both, ["team-a-auditors", "team-b-engineers"])
    client.force_login(both)
    edit_a = client.get(reverse("secrets_admin:secret_edit", args=[NAMES["team-a"]]))
    edit_b = client.get(reverse("secrets_admin:secret_edit", args=[NAMES["team-b"]]))
    assert (edit_a.status_code, edit_b.status_code) == (FORBIDDEN, OK)
    cancel = client.post(
        reverse("secrets_admin:change_request_cancel", args=[world["change_request"]])
    )
    assert cancel.status_code == FORBIDDEN  # proposing on A is beyond an auditor of A
    assert (
        client.get(reverse("secrets_admin:secret_edit", args=[NAMES["untagged"]])).status_code
        == NOT_FOUND
    )


def test_pages_about_a_secret_offer_only_what_the_role_on_it_allows(
    build_world: Any, team_rules: Any, django_user_model: Any, client: Any
) -> None:
    """Edit and Reveal on team B's secret for its engineer, not on team A's where they audit."""
    from secrets_admin.permissions import set_idp_groups

    build_world("team-a", with_request=False)
    both = django_user_model.objects.create_user(username="ben")
    set_idp_groups(both, ["team-a-auditors", "team-b-engineers"])
    client.force_login(both)
    for team, offered in (("team-a", False), ("team-b", True)):
        for view in ("secret_detail", "environment_diff", "secret_history"):
            html = client.get(reverse(f"secrets_admin:{view}", args=[NAMES[team]])).content
            assert (b">Reveal<" in html or b"Restore" in html or b">Edit<" in html) is offered, (
                view,
                team,
            )
