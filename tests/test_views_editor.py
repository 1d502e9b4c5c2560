"""The editor, review, conflict, history, diff, restore and create screens, with the personas."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import audit, aws, changesets, documents, reads
from secrets_admin.changes import editor, protocol
from secrets_admin.changesets import Edit
from secrets_admin.forms import field_name
from secrets_admin.models import AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC
from .test_changes import ODD_TEXT

pytestmark = pytest.mark.django_db

NAME = "a-secrets"
CANARY_DOC = {
    "sandbox": {"stripe": {"secret_key": "CANARY-sandbox-7f3a"}},
    "dev": {"stripe": {"secret_key": "CANARY-dev-91be"}, "db": {"port": 5432}},
    "main": {"stripe": {"secret_key": "CANARY-main-c0de"}},
}
CANARIES = ("CANARY-sandbox-7f3a", "CANARY-dev-91be", "CANARY-main-c0de")
TYPED = "TYPED-CANARY-5e1f"


class Forms(HTMLParser):
    """Every form of a page as a browser would submit it: action, fields (checked boxes, the
    selected option of each select) and the submit buttons' name/value."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.select: dict[str, Any] | None = None  # the open <select>: name, value
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": [], "buttons": []})
            return
        if not self.forms:
            return
        form = self.forms[-1]
        kind = a.get("type", "text")
        if tag == "button":
            form["buttons"].append(a.get("formaction") or form["action"])
        elif tag == "input" and a.get("name") and kind not in ("checkbox", "submit"):
            form["fields"].append((a["name"], a.get("value", "")))
        elif tag == "input" and kind == "checkbox" and "checked" in a:
            form["fields"].append((a["name"], "on"))
        elif tag == "select":
            self.select = {"name": a.get("name", ""), "value": None}
        elif tag == "option" and self.select is not None:
            # The selected option, else the first one.
            selected = "selected" in a or self.select["value"] is None
            self.select["value"] = a.get("value", "") if selected else self.select["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self.select is not None and self.forms:
            self.forms[-1]["fields"].append((self.select["name"], self.select["value"] or ""))
            self.select = None

    def with_button(self, step: str) -> dict[str, Any]:
        """The form whose button posts to the step's own URL (``.../<step>/``)."""
        return next(f for f in self.forms if any(url.endswith(f"/{step}/") for url in f["buttons"]))


def post_form(client: Any, html: str, step: str, **extra: Any) -> Any:
    form = Forms(html).with_button(step)
    data: dict[str, list[str]] = {}
    for name, value in form["fields"]:
        data.setdefault(name, []).append(value)
    for name, value in extra.items():
        data[name] = [value]
    return client.post(form["action"], data)


@pytest.fixture
def opened(as_user: Any, engineer: Any, make_secret: Any) -> tuple[Any, str]:
    """The engineer's client on a fresh standard secret, and its first version id."""
    make_secret(NAME, STANDARD_DOC)
    return as_user(engineer), aws.read_current(NAME).version_id


def save_as(user: Any, base: str, *edits: Edit) -> protocol.SaveResult:
    """Someone saves directly through the use case (another person, in another browser)."""
    return editor.secret_save_changes(
        name=NAME,
        base_version_id=base,
        changeset=list(edits),
        context=audit.Context(user=user),
        change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base),
    )


def edit_url(name: str = NAME) -> str:
    return reverse("secrets_admin:secret_edit", args=[name])


def review(client: Any, base: str, fields: dict[str, str]) -> Any:
    return client.post(
        reverse("secrets_admin:secret_edit_review", args=[NAME]),
        {"base_version_id": base, **fields},
    )


def current_doc(name: str = NAME) -> Any:
    return documents.parse(aws.read_current(name).text or "")


# ----------------------------------------------------------------------------------------
# Access


def test_anonymous_is_sent_to_sign_in_from_the_editor(client: Any) -> None:
    response = client.get(edit_url())
    assert response.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in response["Location"]


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("outsider", HTTPStatus.FORBIDDEN),
        ("auditor", HTTPStatus.FORBIDDEN),
        ("engineer", HTTPStatus.OK),
        ("approver", HTTPStatus.OK),
        ("admin", HTTPStatus.OK),
    ],
)
def test_editor_is_for_engineers_and_up(
    as_user: Any, make_secret: Any, request: Any, persona: str, status: int
) -> None:
    make_secret(NAME, STANDARD_DOC)
    response = as_user(request.getfixturevalue(persona)).get(edit_url())
    assert response.status_code == status


def test_auditor_may_not_save(as_user: Any, auditor: Any, make_secret: Any) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    response = as_user(auditor).post(
        reverse("secrets_admin:secret_edit_save", args=[NAME]),
        {
            "base_version_id": base,
            "change_id": "f" * 32,
            field_name("set", "dev", "stripe", "public_key"): "x",
        },
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert aws.read_current(NAME).version_id == base


@pytest.mark.parametrize(
    ("persona", "status"),
    [("auditor", HTTPStatus.OK), ("outsider", HTTPStatus.FORBIDDEN)],
)
def test_history_is_for_every_role(
    as_user: Any, make_secret: Any, request: Any, persona: str, status: int
) -> None:
    make_secret(NAME, STANDARD_DOC)
    url = reverse("secrets_admin:secret_history", args=[NAME])
    assert as_user(request.getfixturevalue(persona)).get(url).status_code == status


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("engineer", HTTPStatus.FORBIDDEN),
        ("approver", HTTPStatus.FORBIDDEN),
        ("admin", HTTPStatus.OK),
    ],
)
def test_creating_secrets_is_for_admins(
    as_user: Any, request: Any, persona: str, status: int
) -> None:
    response = as_user(request.getfixturevalue(persona)).get(reverse("secrets_admin:secret_create"))
    assert response.status_code == status


SCREENS = [
    ("get", "secret_edit", "engineer"),
    ("get", "secret_edit_row", "engineer"),
    ("post", "secret_restore_review", "engineer"),
    ("post", "secret_restore_save", "engineer"),
    ("post", "secret_undelete", "admin"),
    ("get", "secret_history", "auditor"),
    ("get", "secret_version_diff", "auditor"),
    ("get", "secret_create", "admin"),
]
ROLE_ORDER = ["auditor", "engineer", "approver", "admin"]


@pytest.mark.parametrize(("method", "view", "least"), SCREENS)
@pytest.mark.parametrize("persona", ["anonymous", "outsider", *ROLE_ORDER])
def test_every_new_screen_checks_the_role_on_the_server(
    client: Any, make_secret: Any, request: Any, method: str, view: str, least: str, persona: str
) -> None:
    make_secret(NAME, STANDARD_DOC)
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    url = reverse(f"secrets_admin:{view}", args=[] if view == "secret_create" else [NAME])
    response = getattr(client, method)(url)
    if persona == "anonymous":
        assert response.status_code == HTTPStatus.FOUND
        assert reverse("account_login") in response["Location"]
    elif persona == "outsider" or ROLE_ORDER.index(persona) < ROLE_ORDER.index(least):
        assert response.status_code == HTTPStatus.FORBIDDEN
    else:
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)


# ----------------------------------------------------------------------------------------
# The editor


def test_editor_masks_values_and_offers_protected_cells_marked_as_needing_approval(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    """Protected cells are edited like any other (saving them opens a change request);
    their column says so. Removing a protected environment is not offered."""
    make_secret(NAME, CANARY_DOC)
    html = as_user(engineer).get(edit_url()).content.decode()
    for canary in CANARIES:
        assert canary not in html
    assert 'name="set:[&quot;dev&quot;, &quot;stripe&quot;, &quot;secret_key&quot;]"' in html
    assert 'name="set:[&quot;main&quot;, &quot;stripe&quot;, &quot;secret_key&quot;]"' in html
    assert "needs approval" in html
    assert 'name="remove_environment:[&quot;dev&quot;]"' in html
    assert 'name="remove_environment:[&quot;main&quot;]"' not in html
    assert 'value=""' in html  # inputs start empty: existing values are never pre-filled


def test_full_edit_flow_review_then_save_once(opened: Any) -> None:
    client, base = opened
    reviewed = review(
        client,
        base,
        {
            field_name("set", "dev", "stripe", "secret_key"): TYPED,
            field_name("delete", "dev", "stripe", "public_key"): "on",
            "new-service": "sentry",
            "new-key": "dsn",
            field_name("new-value", "dev"): "https://dsn",
            field_name("new-value", "sandbox"): "",
        },
    )
    html = reviewed.content.decode()
    assert reviewed.status_code == HTTPStatus.OK
    assert "1 added, 1 changed, 1 removed" in html
    fp = reads.fingerprint
    # The stored value's fingerprint, never the typed one's (no value oracle).
    assert documents.short(fp(TYPED)) not in html and documents.short(fp("sk_test_dev")) in html
    assert aws.read_current(NAME).version_id == base  # nothing saved by the review
    saved = post_form(client, html, "save")
    assert saved.status_code == HTTPStatus.FOUND
    doc = current_doc()
    assert doc["dev"]["stripe"] == {"secret_key": TYPED}
    assert doc["dev"]["sentry"] == {"dsn": "https://dsn"}
    assert doc["main"] == STANDARD_DOC["main"]
    page = client.get(saved["Location"]).content.decode()
    assert "Saved as version" in page and "1 added, 1 changed, 1 removed" in page


def test_double_submit_of_the_confirm_form_saves_once(opened: Any) -> None:
    client, base = opened
    html = review(
        client, base, {field_name("set", "dev", "stripe", "public_key"): "pk"}
    ).content.decode()
    first = post_form(client, html, "save")
    second = post_form(client, html, "save")
    assert first.status_code == second.status_code == HTTPStatus.FOUND
    assert len(aws.list_versions(NAME)) == 2
    assert "already saved" in client.get(second["Location"]).content.decode()


def test_no_effective_change_says_no_changes(opened: Any) -> None:
    client, base = opened
    empty = review(client, base, {})
    same = review(client, base, {field_name("set", "dev", "stripe", "public_key"): "pk_test_dev"})
    for response in (empty, same):
        assert b"No changes" in response.content
        assert b"Save as one new version" not in response.content
    assert len(aws.list_versions(NAME)) == 1


def test_edit_of_a_protected_environment_becomes_a_change_request(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    client = as_user(engineer)
    response = review(client, base, {field_name("set", "main", "stripe", "public_key"): "pk"})
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "saving opens a change request" in html and "Propose change request" in html
    saved = post_form(client, html, "save", comment="rotate the live key")
    assert saved.status_code == HTTPStatus.FOUND
    cr = ChangeRequest.objects.get()
    assert saved["Location"] == reverse("secrets_admin:change_request_detail", args=[cr.pk])
    assert (cr.environments, cr.comment, cr.status) == (["main"], "rotate the live key", "open")
    assert aws.read_current(NAME).version_id == base  # nothing current before approval
    page = client.get(saved["Location"]).content.decode()
    assert f"change request #{cr.pk}" in page and "someone else has to approve it" in page


def test_oversize_review_says_by_how_much_and_offers_no_save(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    value = "x" * 65_400
    response = review(as_user(engineer), base, {field_name("set", "dev", "big", "blob"): value})
    html = response.content.decode()
    size = documents.size_bytes(
        documents.serialise(
            changesets.apply(STANDARD_DOC, [Edit("set", "dev", "big", "blob", value)])
        )
    )
    assert f"{size - 65_536} bytes over" in html
    assert "Save as one new version" not in html


def test_back_to_the_editor_keeps_typed_values_only(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    client = as_user(engineer)
    base = aws.read_current(NAME).version_id
    html = review(
        client,
        base,
        {
            field_name("set", "dev", "stripe", "secret_key"): TYPED,
            "new-service": "x",
            "new-key": "y",
            field_name("new-value", "sandbox"): "new-one",
            "newenv-name": "uat",
            "newenv-from": "dev",
        },
    ).content.decode()
    back = post_form(client, html, "edit").content.decode()
    assert f'value="{TYPED}"' in back and 'value="new-one"' in back and 'value="uat"' in back
    for canary in CANARIES:
        assert canary not in back


def test_untouched_types_and_order_survive_an_edit_through_the_screens(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, ODD_TEXT)
    client = as_user(engineer)
    base = aws.read_current(NAME).version_id
    html = review(client, base, {field_name("set", "dev", "s", "k"): "new"}).content.decode()
    post_form(client, html, "save")
    assert aws.read_current(NAME).text == ODD_TEXT.replace('"k":"old"', '"k":"new"')


def test_structure_edits_add_environment_with_structure_and_remove_service(opened: Any) -> None:
    client, base = opened
    html = review(
        client,
        base,
        {
            "newenv-name": "uat",
            "newenv-from": "dev",
            "newsvc-name": "sentry",
            "newsvc-env": "*",
            field_name("remove_service", "databricks"): "*",
            field_name("delete", "dev", "stripe", "public_key"): "on",
            "confirm_name": NAME,
        },
    ).content.decode()
    post_form(client, html, "save")
    doc = current_doc()
    assert doc["uat"]["stripe"] == {"public_key": "", "secret_key": ""}  # dev's keys, no values
    assert doc["dev"]["stripe"] == {"secret_key": "sk_test_dev"}
    assert "databricks" not in doc["dev"] and "databricks" not in doc["uat"]
    assert doc["sandbox"]["sentry"] == {} and doc["dev"]["sentry"] == {}
    assert doc["main"] == STANDARD_DOC["main"]  # "every environment" leaves protected ones out


def test_delete_everywhere_names_the_protected_environments_and_proposes_their_deletion(
    opened: Any,
) -> None:
    client, base = opened
    editor_html = client.get(edit_url()).content.decode()
    assert 'delete everywhere <span class="muted">(main by change request)</span>' in editor_html
    html = review(client, base, {field_name("delete_key", "stripe", "public_key"): "on"})
    assert "3 removed" in html.content.decode()
    assert "Propose change request" in html.content.decode()
    post_form(client, html.content.decode(), "save", comment="retire the public key")
    cr = ChangeRequest.objects.get()
    assert cr.comment == "retire the public key"
    assert sorted(c["environment"] for c in cr.cells) == ["dev", "main", "sandbox"]
    assert current_doc() == STANDARD_DOC  # nothing lands before approval


def test_remove_environment_with_values_asks_for_the_secret_name_and_loses_nothing(
    opened: Any, engineer: Any
) -> None:
    client, base = opened
    fields = {field_name("remove_environment", "sandbox"): "on"}
    refused = review(client, base, fields)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    html = refused.content.decode()
    assert "Removing environment sandbox (2 values) deletes values" in html
    assert f"type the secret&#x27;s name, {NAME}" in html
    assert 'name="remove_environment:[&quot;sandbox&quot;]" data-removal checked' in html
    wrong = review(client, base, {**fields, "confirm_name": "other-secrets"})
    assert wrong.status_code == HTTPStatus.BAD_REQUEST
    crafted = client.post(  # straight to the save step, without the confirmation
        reverse("secrets_admin:secret_edit_save", args=[NAME]),
        {
            "base_version_id": base,
            "change_id": protocol.new_change_id(user=engineer, name=NAME, base_version_id=base),
            **fields,
        },
    )
    assert crafted.status_code == HTTPStatus.BAD_REQUEST
    assert "type the secret" in crafted.content.decode()  # refused for the confirmation
    assert list(current_doc()) == ["sandbox", "dev", "main"]
    html = review(client, base, {**fields, "confirm_name": NAME}).content.decode()
    assert "environment sandbox" in html
    post_form(client, html, "save")
    assert list(current_doc()) == ["dev", "main"]


def test_removing_an_empty_service_needs_no_confirmation(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, {"dev": {"sentry": {}, "stripe": {"k": "v"}}})
    client = as_user(engineer)
    base = aws.read_current(NAME).version_id
    html = review(client, base, {field_name("remove_service", "sentry"): "dev"}).content.decode()
    assert post_form(client, html, "save").status_code == HTTPStatus.FOUND
    assert current_doc() == {"dev": {"stripe": {"k": "v"}}}
    saving = post_form(
        client,
        review(client, aws.read_current(NAME).version_id, {}).content.decode(),
        "review",
        **{field_name("remove_service", "stripe"): "*"},
    )
    assert saving.status_code == HTTPStatus.BAD_REQUEST
    assert "service stripe from dev (1 value)" in saving.content.decode()


def test_a_new_key_needs_a_value(as_user: Any, engineer: Any, make_secret: Any) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    response = review(as_user(engineer), base, {"new-service": "s", "new-key": "k"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"type its value in at least one environment" in response.content


def test_a_damaged_form_is_a_clear_message(as_user: Any, engineer: Any, make_secret: Any) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    response = review(as_user(engineer), base, {"set:[not json": "x"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"The form is damaged" in response.content


def test_htmx_adds_a_row_fragment_with_inputs_for_editable_columns(
    as_user: Any, engineer: Any
) -> None:
    response = as_user(engineer).get(
        reverse("secrets_admin:secret_edit_row", args=[NAME]),
        {"kind": "key", "column": ["dev", "main"]},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert html.lstrip().startswith('<tr class="new-key-row">') and "<html" not in html
    assert "new-value:[&quot;dev&quot;]" in html and "main" not in html


def test_without_javascript_more_blank_rows_come_from_a_link(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    html = as_user(engineer).get(edit_url(), {"rows": 4}).content.decode()
    assert html.count('<tr class="new-key-row">') == 4
    assert 'href="?rows=7"' in html


@pytest.mark.parametrize(
    ("value", "reason"),
    [("DATABASE_URL=x", "does not follow"), ('{"dev": "flat"}', "does not follow")],
)
def test_non_conforming_secret_is_not_editable_with_the_reason(
    as_user: Any, engineer: Any, make_secret: Any, value: str, reason: str
) -> None:
    make_secret(NAME, value)
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "be edited here" in html and reason in html
    assert 'id="editor"' not in html


def test_binary_secret_is_not_editable(as_user: Any, engineer: Any, make_secret: Any) -> None:
    make_secret(NAME, binary=b"\x00\x01")
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "be edited here" in html and 'id="editor"' not in html


def test_secret_scheduled_for_deletion_offers_restore_to_admins_only(
    as_user: Any, engineer: Any, admin: Any, make_secret: Any, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    engineer_html = as_user(engineer).get(edit_url()).content.decode()
    assert "scheduled for deletion" in engineer_html and "cancel the deletion" not in engineer_html
    client = as_user(admin)
    assert "cancel the deletion" in client.get(edit_url()).content.decode()
    response = client.post(reverse("secrets_admin:secret_undelete", args=[NAME]))
    assert response.status_code == HTTPStatus.FOUND
    assert "DeletedDate" not in sm.describe_secret(SecretId=NAME)


def override_meta(monkeypatch: Any, **fields: Any) -> None:
    """Make the gateway report ``fields`` in every secret's metadata."""
    original = aws._meta
    monkeypatch.setattr(
        aws, "_meta", lambda entry: aws.SecretMeta(**{**original(entry).__dict__, **fields})
    )


def test_replica_is_read_only_with_the_reason(
    as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    override_meta(monkeypatch, primary_region="eu-west-1")  # moto has no replicas to offer
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "replica of the secret in eu-west-1" in html and 'id="editor"' not in html


def test_rotation_enabled_warns(
    as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    override_meta(monkeypatch, rotation_enabled=True)  # moto would need a rotation Lambda
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "Rotation is enabled" in html and "never touches AWSPENDING" in html


def test_many_versions_in_a_day_warn_about_the_version_quota(
    as_user: Any, engineer: Any, make_secret: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(reads, "VERSION_WARNING_24H", 3)
    make_secret(NAME, STANDARD_DOC)
    ctx = audit.Context(user=engineer)
    for i in range(2):
        editor.secret_save_changes(
            name=NAME,
            base_version_id=aws.read_current(NAME).version_id,
            changeset=[Edit("set", "dev", "stripe", "public_key", f"v{i}")],
            context=ctx,
            change_id=protocol.new_change_id(
                user=ctx.user, name=NAME, base_version_id=aws.read_current(NAME).version_id
            ),
        )
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "3 versions of this secret were created in the last 24 hours" in html
    assert "LimitExceededException" in html


# ----------------------------------------------------------------------------------------
# Conflicts


def test_conflict_shows_base_theirs_yours_and_reapplies_on_current(
    as_user: Any, engineer: Any, approver: Any, make_secret: Any, client: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    mine = as_user(engineer)
    html = review(
        mine, base, {field_name("set", "dev", "stripe", "secret_key"): TYPED}
    ).content.decode()
    theirs = save_as(approver, base, Edit("set", "dev", "stripe", "secret_key", "THEIRS-value"))
    conflict = post_form(mine, html, "save")
    page = conflict.content.decode()
    assert conflict.status_code == HTTPStatus.CONFLICT
    fp = reads.fingerprint
    for value in ("sk_test_dev", "THEIRS-value"):
        assert documents.short(fp(value)) in page
    assert documents.short(fp(TYPED)) not in page  # yours: typed, so no fingerprint
    assert "THEIRS-value" not in page and "sk_test_dev" not in page
    assert page.count(">Reveal</button>") == 3  # one per side, through the audited reveal
    assert theirs.new_version_id in page
    changed_by = page.split('<td class="changed-by">')[1].split("</td>")[0]
    assert approver.get_username() in changed_by and " UTC</time>" in changed_by
    reapplied = post_form(mine, page, "review")
    assert reapplied.status_code == HTTPStatus.OK
    assert theirs.new_version_id in reapplied.content.decode()  # now based on theirs
    post_form(mine, reapplied.content.decode(), "save")
    assert current_doc()["dev"]["stripe"]["secret_key"] == TYPED


def test_conflict_reveal_of_yours_reads_the_staged_version(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    client = as_user(engineer)
    html = review(
        client, base, {field_name("set", "dev", "stripe", "secret_key"): TYPED}
    ).content.decode()
    save_as(engineer, base, Edit("set", "dev", "stripe", "secret_key", "THEIRS-value"))
    page = post_form(client, html, "save").content.decode()
    yours = [f for f in Forms(page).forms if "reveal" in f["action"]][2]
    revealed = client.post(yours["action"], dict(yours["fields"]), headers={"HX-Request": "true"})
    assert TYPED in revealed.content.decode()


# ----------------------------------------------------------------------------------------
# History, diff, restore


def test_history_shows_author_summary_and_outside_portal_flag(
    as_user: Any, engineer: Any, auditor: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    client = as_user(engineer)
    base = aws.read_current(NAME).version_id
    html = review(
        client, base, {field_name("set", "dev", "stripe", "public_key"): "pk"}
    ).content.decode()
    post_form(client, html, "save")
    page = (
        as_user(auditor).get(reverse("secrets_admin:secret_history", args=[NAME])).content.decode()
    )
    assert "erin-engineer" in page and "1 changed in dev" in page
    assert page.count("outside the portal</span>") == 1  # the first version came from CreateSecret
    assert "AWSCURRENT" in page and "AWSPREVIOUS" in page


def test_diff_between_two_versions_by_fingerprint(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, CANARY_DOC)
    v1 = aws.read_current(NAME).version_id
    v2 = editor.secret_save_changes(
        name=NAME,
        base_version_id=v1,
        changeset=[
            Edit("set", "dev", "stripe", "secret_key", TYPED),
            Edit("set", "dev", "db", "port", "5432"),
            Edit("delete", "sandbox", "stripe", "secret_key"),
            Edit("set", "sandbox", "stripe", "added", "x"),
        ],
        context=audit.Context(user=engineer),
        change_id=protocol.new_change_id(user=engineer, name=NAME, base_version_id=v1),
    ).new_version_id
    response = as_user(engineer).get(
        reverse("secrets_admin:secret_version_diff", args=[NAME]), {"a": v1, "b": v2}
    )
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    for label in ("added", "removed", "changed", "type: number → string"):
        assert f">{label}</span>" in html
    for secret in (*CANARIES, TYPED):
        assert secret not in html
    assert html.count(">Reveal</button>") == 6  # 4 cells: 3 present before, 3 present after


def test_restore_one_environment_from_history(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    v1 = aws.read_current(NAME).version_id
    ctx = audit.Context(user=engineer)
    v2 = editor.secret_save_changes(
        name=NAME,
        base_version_id=v1,
        changeset=[
            Edit("set", "dev", "stripe", "public_key", "dev2"),
            Edit("set", "sandbox", "stripe", "public_key", "sb2"),
        ],
        context=ctx,
        change_id=protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=v1),
    ).new_version_id
    client = as_user(engineer)
    review_page = client.post(
        reverse("secrets_admin:secret_restore_review", args=[NAME]),
        {"environment": "dev", "version_id": v1},
    )
    html = review_page.content.decode()
    assert review_page.status_code == HTTPStatus.OK and "Restore dev" in html and v2 in html
    saved = post_form(client, html, "save")
    assert saved["Location"] == reverse("secrets_admin:secret_history", args=[NAME])
    doc = current_doc()
    assert doc["dev"] == STANDARD_DOC["dev"] and doc["sandbox"]["stripe"]["public_key"] == "sb2"
    history_page = client.get(saved["Location"]).content.decode()
    assert f"restored dev to {v1}" in history_page


def test_restore_of_a_protected_environment_becomes_a_change_request_on_screen(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    from secrets_admin.models import ChangeRequest

    from .test_changes import _change_main_outside_the_editor

    make_secret(NAME, STANDARD_DOC)
    v1 = aws.read_current(NAME).version_id
    v2 = _change_main_outside_the_editor(v1)
    client = as_user(engineer)
    history_page = client.get(reverse("secrets_admin:secret_history", args=[NAME]))
    assert '<option value="main">main (opens a change request)</option>' in (
        history_page.content.decode()
    )
    url = reverse("secrets_admin:secret_restore_review", args=[NAME])
    review = client.post(url, {"environment": "main", "version_id": v1})
    assert review.status_code == HTTPStatus.OK
    change_id = review.context["change_id"]
    saved = client.post(
        reverse("secrets_admin:secret_restore_save", args=[NAME]),
        {
            "environment": "main",
            "version_id": v1,
            "base_version_id": v2,
            "change_id": change_id,
        },
    )
    request_ = ChangeRequest.objects.get()
    assert saved["Location"] == reverse("secrets_admin:change_request_detail", args=[request_.pk])
    assert aws.read_current(NAME).version_id == v2


# ----------------------------------------------------------------------------------------
# Create


def test_admin_creates_a_secret(as_user: Any, admin: Any, sm: Any) -> None:
    response = as_user(admin).post(
        reverse("secrets_admin:secret_create"),
        {
            "repo": "shiny",
            "description": "Shiny app",
            "environments": "sandbox, dev, main",
            "services": "stripe: public_key, secret_key\nsentry",
            "tags": "team=core",
            "kms_key_id": "",
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("secrets_admin:secret_detail", args=["shiny-secrets"])
    doc = current_doc("shiny-secrets")
    assert doc["dev"] == {"stripe": {"public_key": "", "secret_key": ""}, "sentry": {}}
    history_page = (
        as_user(admin)
        .get(reverse("secrets_admin:secret_history", args=["shiny-secrets"]))
        .content.decode()
    )
    assert "ada-admin" in history_page and "created with sandbox, dev, main" in history_page
    assert "outside the portal</span>" not in history_page
    grid_page = as_user(admin).get(response["Location"]).content.decode()
    editor_page = as_user(admin).get(edit_url("shiny-secrets")).content.decode()
    for page in (grid_page, editor_page):  # 3 environments x 2 template keys, none masked
        assert page.count('>empty</span> <span class="small muted">needs a value') == 6
    assert "Reveal main stripe secret_key" not in grid_page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"repo": "bad name"}, "only ASCII letters"),
        ({"repo": "ok", "environments": "dev, main "}, None),
        ({"repo": "ok", "environments": " , "}, "at least one environment"),
        ({"repo": "ok", "tags": "novalue"}, "Key=Value"),
        ({"repo": "ok", "services": "svc: bad\tkey"}, "control character"),
    ],
)
def test_create_form_refuses_bad_input_with_a_message(
    as_user: Any, admin: Any, data: dict[str, str], message: str | None
) -> None:
    payload = {
        "repo": "",
        "description": "",
        "environments": "dev",
        "services": "",
        "tags": "",
        "kms_key_id": "",
        **data,
    }
    response = as_user(admin).post(reverse("secrets_admin:secret_create"), payload)
    if message is None:
        assert response.status_code == HTTPStatus.FOUND
    else:
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert message in response.content.decode()


def test_create_of_a_name_pending_deletion_offers_restore(
    as_user: Any, admin: Any, make_secret: Any, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    response = as_user(admin).post(
        reverse("secrets_admin:secret_create"),
        {
            "repo": "a",
            "environments": "dev",
            "description": "",
            "services": "",
            "tags": "",
            "kms_key_id": "",
        },
    )
    html = response.content.decode()
    assert "scheduled for deletion" in html
    assert reverse("secrets_admin:secret_undelete", args=[NAME]) in html


# ----------------------------------------------------------------------------------------
# The canary, through the editor


def test_canary_values_appear_nowhere_in_the_editor_flow(
    as_user: Any, engineer: Any, make_secret: Any, caplog: Any
) -> None:
    """Existing values: in no response at all (none is a reveal here). The typed value: only in
    the pages that carry the person's own edits (review, conflict), never in the database, the
    logs, the session, the audit log or any other page."""
    make_secret(NAME, CANARY_DOC)
    client = as_user(engineer)
    base = aws.read_current(NAME).version_id
    own_edit_pages: list[bytes] = []
    other_pages: list[bytes] = [client.get(edit_url()).content]
    reviewed = review(client, base, {field_name("set", "dev", "stripe", "secret_key"): TYPED})
    own_edit_pages.append(reviewed.content)
    own_edit_pages.append(post_form(client, reviewed.content.decode(), "edit").content)
    saved = post_form(client, reviewed.content.decode(), "save")
    other_pages.append(client.get(saved["Location"]).content)
    other_pages.append(client.get(reverse("secrets_admin:secret_history", args=[NAME])).content)
    new = aws.read_current(NAME).version_id
    other_pages.append(
        client.get(
            reverse("secrets_admin:secret_version_diff", args=[NAME]), {"a": base, "b": new}
        ).content
    )
    other_pages.append(
        client.post(
            reverse("secrets_admin:secret_restore_review", args=[NAME]),
            {"environment": "dev", "version_id": base},
        ).content
    )
    # A conflict: someone else saves, then this person submits an edit made on the old base.
    stale = review(client, new, {field_name("set", "dev", "stripe", "secret_key"): TYPED + "2"})
    save_as(engineer, new, Edit("set", "dev", "stripe", "secret_key", "OTHER-CANARY-0a0a"))
    own_edit_pages.append(post_form(client, stale.content.decode(), "save").content)
    dump = _database_dump()
    session = json.dumps(dict(client.session), default=str)
    for secret in (*CANARIES, TYPED, "OTHER-CANARY-0a0a"):
        for body in other_pages:
            assert secret.encode() not in body
        assert secret not in caplog.text
        assert secret not in dump
        assert secret not in session
    for canary in (*CANARIES, "OTHER-CANARY-0a0a"):
        for body in own_edit_pages:
            assert canary.encode() not in body
    assert AuditEvent.objects.filter(action="save", outcome="conflicted").count() == 1


def _database_dump() -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_a_large_secret_round_trips_through_the_editor_form(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    doc = {env: {"svc": {f"key{i:04d}": f"v{i}" for i in range(500)}} for env in ("sandbox", "dev")}
    make_secret(NAME, doc)
    client = as_user(engineer)
    form = Forms(client.get(edit_url()).content.decode()).with_button("review")
    assert len(form["fields"]) > 1000  # more than Django's default DATA_UPLOAD_MAX_NUMBER_FIELDS
    data: dict[str, list[str]] = {}
    for name, value in form["fields"]:
        data.setdefault(name, []).append(value)
    data[field_name("set", "dev", "svc", "key0042")] = ["changed"]
    html = client.post(form["action"], data).content.decode()
    assert "0 added, 1 changed, 0 removed" in html


def test_secret_without_a_value_is_not_editable_and_says_why(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME)
    html = as_user(engineer).get(edit_url()).content.decode()
    assert "no value yet" in html and 'id="editor"' not in html
    assert reverse("secrets_admin:secret_first_version", args=[NAME]) in html


def test_a_secret_without_a_value_starts_empty_and_the_editor_adds_its_first_environment(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME)
    client = as_user(engineer)
    url = reverse("secrets_admin:secret_first_version", args=[NAME])
    started = client.post(url)
    assert started.status_code == HTTPStatus.FOUND and started["Location"] == edit_url()
    assert current_doc() == {}
    events = AuditEvent.objects.filter(secret=NAME, action="save").order_by("seq")
    assert [(e.outcome, e.detail["kind"]) for e in events] == [
        ("attempted", "first_version"),
        ("succeeded", "first_version"),
    ]
    again = client.post(url)
    assert again.status_code == HTTPStatus.BAD_REQUEST
    assert "has a value already" in again.content.decode()
    editor_html = client.get(edit_url()).content.decode()
    assert 'id="editor"' in editor_html
    fields = dict(Forms(editor_html).with_button("review")["fields"])
    reviewed = review(
        client, fields["base_version_id"], {"newenv-name": "sandbox", "newenv-from": ""}
    )
    assert post_form(client, reviewed.content.decode(), "save").status_code == HTTPStatus.FOUND
    assert current_doc() == {"sandbox": {}}
    assert len(aws.list_versions(NAME)) == 2


TYPED_DOC = {"dev": {"flags": {"beta": True, "retries": 3, "regions": ["eu"]}}}


def test_editor_offers_each_cell_its_own_type_and_the_review_names_a_type_change(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, TYPED_DOC)
    base = aws.read_current(NAME).version_id
    client = as_user(engineer)
    fields = dict(Forms(client.get(edit_url()).content.decode()).with_button("review")["fields"])
    assert fields[field_name("type", "dev", "flags", "beta")] == "boolean"
    assert fields[field_name("type", "dev", "flags", "retries")] == "number"
    assert fields[field_name("type", "dev", "flags", "regions")] == "json"
    reviewed = review(
        client,
        base,
        {
            field_name("set", "dev", "flags", "beta"): "false",
            field_name("type", "dev", "flags", "beta"): "boolean",
            field_name("set", "dev", "flags", "retries"): "3",
            field_name("type", "dev", "flags", "retries"): "string",
        },
    )
    html = reviewed.content.decode()
    assert reviewed.status_code == HTTPStatus.OK
    assert "type: number → string" in html and "1 added, 2 changed" not in html
    assert post_form(client, html, "save").status_code == HTTPStatus.FOUND
    assert current_doc()["dev"]["flags"] == {"beta": False, "retries": "3", "regions": ["eu"]}


def test_a_value_not_of_its_type_returns_the_editor_with_the_reason_and_the_typing_kept(
    as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret(NAME, TYPED_DOC)
    base = aws.read_current(NAME).version_id
    response = review(
        as_user(engineer),
        base,
        {
            field_name("set", "dev", "flags", "retries"): "three",
            field_name("type", "dev", "flags", "retries"): "number",
        },
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    html = response.content.decode()
    assert "dev · flags · retries (number): not a number" in html
    fields = dict(Forms(html).with_button("review")["fields"])
    assert fields[field_name("set", "dev", "flags", "retries")] == "three"
    assert len(aws.list_versions(NAME)) == 1
