"""Guarantees a hand-made post cannot bend, tried as a hostile engineer would through the views:
server-minted change ids, idempotency that matches the whole change, "applied" checked against
Secrets Manager, approvals that bind (author never applies, approved requests expire, what the
approver saw is what lands, break-glass reasons in the chain, leftover labels cleaned)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from secrets_admin import audit, audit_verify, aws, documents, reads
from secrets_admin.changes import change_request_apply, change_requests, editor, protocol
from secrets_admin.changes import migration as wizard
from secrets_admin.changesets import Edit
from secrets_admin.forms import field_name
from secrets_admin.models import Approval, AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC

pytestmark = pytest.mark.django_db

NAME = "a-secrets"
CANARY = "CANARY-integrity-7d1c"
MAIN_EDIT = Edit("set", "main", "stripe", "secret_key", CANARY)


def ctx(user: Any) -> audit.Context:
    return audit.Context(user=user, client_ip="127.0.0.1", user_agent="pytest")


def current_doc() -> Any:
    return documents.parse(aws.read_current(NAME).text or "")


def cr_labels(sm: Any) -> dict[str, list[str]]:
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    return {
        version: [label for label in labels if label.startswith("CR-")]
        for version, labels in stages.items()
        if any(label.startswith("CR-") for label in labels)
    }


def propose(user: Any, *edits: Edit) -> ChangeRequest:
    base = aws.read_current(NAME).version_id
    return change_requests.change_request_propose(
        name=NAME,
        base_version_id=base,
        changeset=list(edits),
        context=ctx(user),
        change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base),
    )


def save_as(user: Any, base: str, edit: Edit) -> protocol.SaveResult | ChangeRequest:
    """Someone saves ``edit`` on version ``base`` through the use case (another browser)."""
    return editor.secret_save_changes(
        name=NAME,
        base_version_id=base,
        changeset=[edit],
        context=ctx(user),
        change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base),
    )


def review(client: Any, base: str, values: dict[tuple[str, str, str], str]) -> Any:
    """The editor's review step for ``values`` typed on version ``base``."""
    return client.post(
        reverse("secrets_admin:secret_edit_review", args=[NAME]),
        {"base_version_id": base, **{field_name("set", *c): v for c, v in values.items()}},
    )


def save_post(
    client: Any, base: str, values: dict[tuple[str, str, str], str], change_id: str
) -> Any:
    """A hand-made post to the editor's save step."""
    return client.post(
        reverse("secrets_admin:secret_edit_save", args=[NAME]),
        {
            "base_version_id": base,
            "change_id": change_id,
            **{field_name("set", *c): v for c, v in values.items()},
        },
    )


def reviewed_token(client: Any, cr: ChangeRequest) -> str:
    """The signed token the request's page gives its approve / apply form."""
    page = client.get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert page.status_code == HTTPStatus.OK
    return str(page.context["reviewed"])


def decide(client: Any, action: str, cr: ChangeRequest) -> Any:
    """Open the request's page as the approver would, then post its ``action`` form."""
    return client.post(
        reverse(f"secrets_admin:change_request_{action}", args=[cr.pk]),
        {"reviewed": reviewed_token(client, cr)},
    )


@pytest.fixture
def secret(make_secret: Any) -> str:
    make_secret(NAME, STANDARD_DOC)
    return aws.read_current(NAME).version_id


DEV_KEY = ("dev", "stripe", "public_key")


# --------------------------------------------------------------------------------------------
# 1. Change ids are the server's; "applied" is what Secrets Manager holds


def test_guessed_change_request_rebase_id_is_refused_and_the_approval_still_lands(
    secret: str, engineer: Any, approver: Any, as_user: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    client = as_user(engineer)
    crafted = save_post(client, secret, {DEV_KEY: "pk_dev_2"}, f"change-request-{cr.pk}-rebase")
    assert crafted.status_code == HTTPStatus.BAD_REQUEST
    assert b"was not issued for you" in crafted.content
    assert aws.read_current(NAME).version_id == secret  # nothing saved
    # An honest dev save moves the base, so the approval takes the rebase path.
    token = review(client, secret, {DEV_KEY: "pk_dev_2"}).context["change_id"]
    assert save_post(client, secret, {DEV_KEY: "pk_dev_2"}, token).status_code == HTTPStatus.FOUND
    approved = decide(as_user(approver), "approve", cr)
    assert approved.status_code == HTTPStatus.FOUND
    cr.refresh_from_db()
    doc = current_doc()
    assert cr.status == "applied" and cr.applied_version == aws.read_current(NAME).version_id
    assert doc["main"]["stripe"]["secret_key"] == CANARY and doc["dev"]["stripe"]["public_key"] == (
        "pk_dev_2"
    )
    assert AuditEvent.objects.filter(
        action="change_request_apply", outcome="succeeded", change_request=cr.pk
    ).exists()


@pytest.mark.parametrize("who", ["tampered", "someone else's", "another version's"])
def test_foreign_or_tampered_change_id_is_a_400_and_saves_nothing(
    secret: str, engineer: Any, approver: Any, as_user: Any, who: str
) -> None:
    if who == "someone else's":
        change_id = review(as_user(approver), secret, {DEV_KEY: "x"}).context["change_id"]
    else:
        change_id = review(as_user(engineer), secret, {DEV_KEY: "x"}).context["change_id"]
    if who == "tampered":
        change_id = change_id[:-2] + ("AA" if not change_id.endswith("AA") else "BB")
    base = secret
    if who == "another version's":
        save_as(approver, secret, Edit("set", "sandbox", "stripe", "public_key", "pk2"))
        base = aws.read_current(NAME).version_id  # the id was minted for the older base
    before = aws.read_current(NAME).version_id
    response = save_post(as_user(engineer), base, {DEV_KEY: "x"}, change_id)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert aws.read_current(NAME).version_id == before


@pytest.mark.parametrize("flow", ["secret_restore_save", "environment_copy_save"])
def test_restore_and_copy_refuse_a_change_id_minted_for_someone_else_with_a_400(
    secret: str, engineer: Any, approver: Any, as_user: Any, flow: str
) -> None:
    # A second version, so there is something to restore.
    save_as(approver, secret, Edit("set", "dev", "stripe", "public_key", "pk2"))
    current = aws.read_current(NAME).version_id
    foreign = protocol.new_change_id(user=approver, name=NAME, base_version_id=current)
    data = {
        "secret_restore_save": {"environment": "dev", "version_id": secret},
        "environment_copy_save": {
            "a": "dev",
            "b": "sandbox",
            field_name("row", "stripe", "secret_key"): "on",
            "mode": "values",
        },
    }[flow]
    response = as_user(engineer).post(
        reverse(f"secrets_admin:{flow}", args=[NAME]),
        {**data, "base_version_id": current, "change_id": foreign},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"was not issued for you" in response.content
    assert aws.read_current(NAME).version_id == current


def test_repeat_of_a_change_id_with_other_values_is_saved_not_called_already_saved(
    secret: str, engineer: Any, as_user: Any
) -> None:
    client = as_user(engineer)
    change_id = review(client, secret, {DEV_KEY: "first"}).context["change_id"]
    assert save_post(client, secret, {DEV_KEY: "first"}, change_id).status_code == HTTPStatus.FOUND
    # The same (valid) id, reposted with another change: a different change, never "already".
    sandbox = ("sandbox", "stripe", "public_key")
    again = save_post(client, secret, {sandbox: "second"}, change_id)
    assert again.status_code == HTTPStatus.FOUND
    assert "already saved" not in client.get(again["Location"]).content.decode()
    assert current_doc()["sandbox"]["stripe"]["public_key"] == "second"
    # A true repeat (same author, id, values and base) still is one, and writes nothing.
    versions = len(aws.list_versions(NAME))
    repeat = save_post(client, secret, {DEV_KEY: "first"}, change_id)
    assert "already saved" in client.get(repeat["Location"]).content.decode()
    assert len(aws.list_versions(NAME)) == versions


def test_applied_is_read_from_the_current_version_in_secrets_manager(
    secret: str, engineer: Any, approver: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    assert change_request_apply.current_holds(cr) is None  # proposed, not current
    done = change_requests.change_request_approve(
        request_id=cr.pk,
        context=ctx(approver),
        reviewed=change_requests.change_request_reviewed_token(cr, secret),
    )
    assert done.status == "applied"
    assert change_request_apply.current_holds(done) == done.applied_version == cr.staged_version
    # AWSCURRENT moved back outside the portal: the request's cells are no longer current.
    sm.update_secret_version_stage(
        SecretId=NAME,
        VersionStage="AWSCURRENT",
        MoveToVersionId=secret,
        RemoveFromVersionId=cr.staged_version,
    )
    assert change_request_apply.current_holds(done) is None


# --------------------------------------------------------------------------------------------
# 3. Approvals bind


def _approved_not_applied(cr: ChangeRequest, approver: Any, *, ago: timedelta) -> None:
    """Arrange a request whose approval is complete but whose apply failed (an AWS error)."""
    Approval.objects.create(
        request=cr, approver=approver, approver_username=approver.get_username(), decision="approve"
    )
    Approval.objects.filter(request=cr).update(created=timezone.now() - ago)
    ChangeRequest.objects.filter(pk=cr.pk).update(status="approved")


def test_apply_refused_past_the_deadline_expires_the_request_at_once(
    secret: str, engineer: Any, approver: Any, admin: Any, as_user: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    _approved_not_applied(cr, approver, ago=timedelta(minutes=1))
    ChangeRequest.objects.filter(pk=cr.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = decide(as_user(admin), "apply", cr)
    assert refused.status_code == HTTPStatus.CONFLICT and b"expired" in refused.content
    cr.refresh_from_db()
    assert cr.status == "expired" and not cr.applied_version
    assert cr_labels(sm) == {} and aws.read_current(NAME).version_id == secret
    assert AuditEvent.objects.filter(
        action="change_request_expire", change_request=cr.pk, outcome="succeeded"
    ).exists()


def test_author_cannot_apply_their_own_approved_request(
    secret: str, approver: Any, admin: Any, as_user: Any
) -> None:
    cr = propose(approver, MAIN_EDIT)  # an approver is the author
    _approved_not_applied(cr, admin, ago=timedelta(minutes=1))
    client = as_user(approver)
    page = client.get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert b"Apply again" not in page.content
    response = client.post(
        reverse("secrets_admin:change_request_apply", args=[cr.pk]),
        {"reviewed": page.context["reviewed"]},
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    cr.refresh_from_db()
    assert cr.status == "approved" and aws.read_current(NAME).version_id == secret
    # Another approver may.
    applied = decide(as_user(admin), "apply", cr)
    assert applied.status_code == HTTPStatus.FOUND
    cr.refresh_from_db()
    assert cr.status == "applied" and current_doc()["main"]["stripe"]["secret_key"] == CANARY


def test_approved_but_unapplied_request_expires(
    secret: str, engineer: Any, approver: Any, admin: Any, as_user: Any, sm: Any, settings: Any
) -> None:
    settings.PORTAL_APPROVED_CHANGE_REQUEST_HOURS = 1
    late = propose(engineer, MAIN_EDIT)
    _approved_not_applied(late, approver, ago=timedelta(hours=2))
    refused = decide(as_user(admin), "apply", late)
    assert refused.status_code == HTTPStatus.CONFLICT and b"expired" in refused.content
    assert aws.read_current(NAME).version_id == secret
    # Without the setting, the request's own expiry applies to approved requests too.
    settings.PORTAL_APPROVED_CHANGE_REQUEST_HOURS = 0
    old = propose(engineer, Edit("set", "main", "stripe", "public_key", "pk2"))
    _approved_not_applied(old, approver, ago=timedelta(minutes=1))
    ChangeRequest.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    settings.PORTAL_APPROVED_CHANGE_REQUEST_HOURS = 1
    call_command("change_requests_expire", stdout=open("/dev/null", "w"))  # noqa: SIM115
    late.refresh_from_db()
    old.refresh_from_db()
    assert late.status == old.status == "expired"
    assert cr_labels(sm) == {}


def test_break_glass_reason_is_part_of_the_hash_chained_event(
    secret: str, admin: Any, settings: Any
) -> None:
    settings.PORTAL_BREAK_GLASS_USERS = ["ada-admin"]
    cr = propose(admin, MAIN_EDIT)
    change_requests.change_request_bypass(request_id=cr.pk, context=ctx(admin), reason="outage 42")
    ChangeRequest.objects.filter(pk=cr.pk).update(bypass_reason="nothing to see")
    events = AuditEvent.objects.filter(action="change_request_bypass", change_request=cr.pk)
    assert [e.detail.get("reason") for e in events] == ["outage 42", "outage 42"]
    assert audit_verify.verify().ok


def test_approval_of_a_page_older_than_the_current_version_is_409_and_applies_nothing(
    secret: str, engineer: Any, approver: Any, as_user: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    client = as_user(approver)
    token = reviewed_token(client, cr)
    # The base moves after the approver's page was rendered.
    save_as(engineer, secret, Edit("set", "sandbox", "stripe", "public_key", "pk2"))
    moved = aws.read_current(NAME).version_id
    stale = client.post(
        reverse("secrets_admin:change_request_approve", args=[cr.pk]), {"reviewed": token}
    )
    assert stale.status_code == HTTPStatus.CONFLICT
    assert b"changed since you reviewed it" in stale.content
    forged = client.post(
        reverse("secrets_admin:change_request_approve", args=[cr.pk]), {"reviewed": token + "x"}
    )
    assert forged.status_code == HTTPStatus.BAD_REQUEST
    cr.refresh_from_db()
    assert cr.status == "open" and not Approval.objects.exists()
    assert aws.read_current(NAME).version_id == moved


def test_leftover_label_moved_out_of_band_is_removed_on_close_and_explained(
    secret: str, engineer: Any, as_user: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    sm.update_secret_version_stage(  # someone moves CR-<id> by hand
        SecretId=NAME,
        VersionStage=cr.label,
        MoveToVersionId=secret,
        RemoveFromVersionId=cr.staged_version,
    )
    assert cr_labels(sm) == {secret: [cr.label]}
    client = as_user(engineer)
    client.post(reverse("secrets_admin:change_request_cancel", args=[cr.pk]))
    assert cr_labels(sm) == {}
    page = client.get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert f"moved outside the portal to version {secret}".encode() in page.content


# --------------------------------------------------------------------------------------------
# 2. The review is no value oracle


STORED_DEV = STANDARD_DOC["dev"]["stripe"]["public_key"]  # what a guesser tries to confirm


def test_review_never_shows_a_fingerprint_of_a_typed_value(
    secret: str, engineer: Any, as_user: Any
) -> None:
    guess = "pk_guess_1"
    response = review(as_user(engineer), secret, {DEV_KEY: guess})
    assert response.status_code == HTTPStatus.OK and b"changed" in response.content
    assert documents.short(reads.fingerprint(guess)).encode() not in response.content


def test_review_and_no_changes_are_recorded_as_comparisons_naming_the_cells(
    secret: str, engineer: Any, as_user: Any
) -> None:
    client = as_user(engineer)
    same = review(client, secret, {DEV_KEY: STORED_DEV, ("dev", "stripe", "new_key"): "n"})
    assert same.status_code == HTTPStatus.OK
    equal = review(client, secret, {DEV_KEY: STORED_DEV})  # "no changes": the guess was right
    assert b"No changes" in equal.content or b"no changes" in equal.content
    events = AuditEvent.objects.filter(action="value_compare").order_by("seq")
    assert [e.detail["cells"] for e in events] == [
        [{"environment": "dev", "service": "stripe", "key": "public_key"}]
    ] * 2  # the new key holds no stored value: nothing compared there
    assert all(e.actor_username == "erin-engineer" and e.secret == NAME for e in events)
    assert STORED_DEV not in repr([e.detail for e in events])
    assert audit_verify.verify().ok


def test_comparisons_count_against_the_reveal_budget(
    secret: str, engineer: Any, as_user: Any, settings: Any
) -> None:
    settings.PORTAL_REVEAL_RATE = "3/h"
    client = as_user(engineer)
    for i in range(2):
        assert review(client, secret, {DEV_KEY: f"guess-{i}"}).status_code == HTTPStatus.OK
    change_id = review(client, secret, {DEV_KEY: "guess-2"}).context["change_id"]
    refused_save = save_post(client, secret, {DEV_KEY: "guess-2"}, change_id)
    assert refused_save.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 1 <= int(refused_save["Retry-After"]) <= 3600
    assert aws.read_current(NAME).version_id == secret  # nothing saved
    assert review(client, secret, {DEV_KEY: "guess-3"}).status_code == (
        HTTPStatus.TOO_MANY_REQUESTS
    )
    reveal = client.post(
        reverse("secrets_admin:cell_reveal", args=[NAME]),
        {"version_id": secret, "environment": "dev", "service": "stripe", "key": "public_key"},
    )
    assert reveal.status_code == HTTPStatus.TOO_MANY_REQUESTS  # one budget for both
    assert AuditEvent.objects.filter(action="value_compare").count() == 3


def test_conflict_page_shows_no_fingerprint_of_the_typed_value_and_is_recorded(
    secret: str, engineer: Any, approver: Any, as_user: Any
) -> None:
    client = as_user(engineer)
    change_id = review(client, secret, {DEV_KEY: "mine"}).context["change_id"]
    # Someone else changes the same cell first.
    save_as(approver, secret, Edit("set", *DEV_KEY, value="theirs"))
    conflict = save_post(client, secret, {DEV_KEY: "mine"}, change_id)
    assert conflict.status_code == HTTPStatus.CONFLICT
    assert documents.short(reads.fingerprint("mine")).encode() not in conflict.content
    assert documents.short(reads.fingerprint("theirs")).encode() in conflict.content
    compared = AuditEvent.objects.filter(action="value_compare", actor_username="erin-engineer")
    assert compared.count() == 2  # the review and the save


# --------------------------------------------------------------------------------------------
# 4. Admin reach stays inside the standard's world


def test_schedule_deletion_only_for_a_legacy_secret_of_an_existing_or_migrated_unified_secret(
    admin: Any, as_user: Any, make_secret: Any, sm: Any
) -> None:
    make_secret("shop-secrets", {"dev": {}})
    make_secret("shop-stripe-dev", {"k": "v"})  # legacy of shop-secrets
    make_secret("billing-db-prod", {"k": "v"})  # legacy-looking, but billing-secrets is absent
    make_secret("payroll-export", {"k": "v"})  # outside the standard's world
    client = as_user(admin)
    url = reverse("secrets_admin:legacy_secret_schedule_deletion")
    for name in ("billing-db-prod", "payroll-export", "no-such-secret-dev"):
        refused = client.post(url, {"name": name, "recovery_days": "7"}, follow=True)
        assert "will not schedule its deletion" in refused.content.decode() or (
            "not a live secret the portal manages" in refused.content.decode()
        ), name
    for name in ("billing-db-prod", "payroll-export"):
        assert sm.describe_secret(SecretId=name).get("DeletedDate") is None
    done = client.post(url, {"name": "shop-stripe-dev", "recovery_days": "9"}, follow=True)
    assert "(9 days to restore it)" in done.content.decode()  # the recovery window, shown
    assert sm.describe_secret(SecretId="shop-stripe-dev").get("DeletedDate")
    event = AuditEvent.objects.get(action="secret_delete_schedule", outcome="succeeded")
    assert event.detail["legacy_of"] == "shop-secrets" and event.detail["recovery_days"] == 9
    # What the portal migrated may go too, whatever its name.
    plan = wizard.migration_plan(
        repo="shop", sources=[wizard.MigrationSource("payroll-export", "dev", "payroll")]
    )
    wizard.secret_migrate(
        repo="shop",
        sources=[wizard.MigrationSource("payroll-export", "dev", "payroll")],
        digest=plan.digest,
        context=ctx(admin),
        change_id=protocol.new_change_id(
            user=admin, name="shop-secrets", base_version_id=plan.base_version_id
        ),
    )
    migrated = client.post(url, {"name": "payroll-export", "recovery_days": "7"}, follow=True)
    assert "scheduled for deletion" in migrated.content.decode()
    assert sm.describe_secret(SecretId="payroll-export").get("DeletedDate")


@pytest.mark.parametrize("step", ["secret_migrate_preview", "secret_migrate_apply"])
def test_migration_wizard_refuses_a_source_it_does_not_list(
    admin: Any, as_user: Any, make_secret: Any, step: str
) -> None:
    make_secret("shop-stripe-dev", {"secret_key": "sk_legacy"})
    make_secret("payments-secrets", {"main": {"stripe": {"secret_key": "sk_live_payments"}}})
    data = {
        "repo": "shop",
        "legacy": ["shop-stripe-dev", "payments-secrets"],  # another repo's unified secret
        field_name("legacy_env", "shop-stripe-dev"): "dev",
        field_name("legacy_service", "shop-stripe-dev"): "stripe",
        field_name("legacy_env", "payments-secrets"): "dev",
        field_name("legacy_service", "payments-secrets"): "payments",
        "digest": "x",
        "change_id": "x",
    }
    response = as_user(admin).post(reverse(f"secrets_admin:{step}"), data)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"not among the legacy secrets this wizard lists" in response.content
    assert "shop-secrets" not in [m.name for m in aws.iter_secrets()]
    assert not AuditEvent.objects.filter(action="secret_migrate").exists()


def test_migration_preview_of_typed_env_values_is_a_recorded_comparison_without_fingerprints(
    admin: Any, as_user: Any, make_secret: Any
) -> None:
    make_secret("shop-secrets", {"dev": {"stripe": {"secret_key": "sk_stored"}}})
    response = as_user(admin).post(
        reverse("secrets_admin:secret_migrate_preview"),
        {"repo": "shop", "dotenv_text": "STRIPE_SECRET_KEY=sk_guess\n", "dotenv_env": "dev"},
    )
    assert response.status_code == HTTPStatus.OK
    assert documents.short(reads.fingerprint("sk_guess")).encode() not in response.content
    event = AuditEvent.objects.get(action="value_compare")
    assert event.secret == "shop-secrets" and event.detail["cells"] == [
        {"environment": "dev", "service": "stripe", "key": "secret_key"}
    ]
