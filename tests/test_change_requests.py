"""Change requests against the moto server: propose, approve, reject, cancel, apply
(promote, rebase, conflict), concurrency, the label quota, expiry, break-glass, emails, views."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from secrets_admin import audit, audit_verify, aws, documents, errors, reads
from secrets_admin.changes import change_requests, editor, protocol
from secrets_admin.changesets import Edit
from secrets_admin.models import Approval, AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC

pytestmark = pytest.mark.django_db

NAME = "a-secrets"
CANARY = "CANARY-proposed-4b7e"


def ctx(user: Any) -> audit.Context:
    return audit.Context(user=user, client_ip="127.0.0.1", user_agent="pytest")


def current_doc() -> Any:
    return documents.parse(aws.read_current(NAME).text or "")


def cr_labels(sm: Any) -> list[str]:
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    return sorted(
        label for labels in stages.values() for label in labels if label.startswith("CR-")
    )


def propose(user: Any, *edits: Edit, base: str | None = None) -> ChangeRequest:
    base_version_id = base or aws.read_current(NAME).version_id
    return change_requests.change_request_propose(
        name=NAME,
        base_version_id=base_version_id,
        changeset=list(edits),
        context=ctx(user),
        change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base_version_id),
        comment="please",
    )


def save(user: Any, *edits: Edit) -> protocol.SaveResult:
    base_version_id = aws.read_current(NAME).version_id
    return editor.secret_save_changes(
        name=NAME,
        base_version_id=base_version_id,
        changeset=list(edits),
        context=ctx(user),
        change_id=protocol.new_change_id(user=user, name=NAME, base_version_id=base_version_id),
    )


def reviewed(cr: ChangeRequest) -> str:
    """The token of the request's page as an approver would see it now."""
    return change_requests.change_request_reviewed_token(cr, aws.read_current(NAME).version_id)


def approve(user: Any, cr: ChangeRequest) -> ChangeRequest:
    return change_requests.change_request_approve(
        request_id=cr.pk, context=ctx(user), reviewed=reviewed(cr)
    )


MAIN_EDIT = Edit("set", "main", "stripe", "secret_key", CANARY)


@pytest.fixture
def secret(make_secret: Any, engineer: Any, approver: Any, admin: Any) -> str:
    make_secret(NAME, STANDARD_DOC)
    for user, email in (
        (engineer, "erin@example.test"),
        (approver, "alex@example.test"),
        (admin, "ada@example.test"),
    ):
        user.email = email
        user.save()
    return aws.read_current(NAME).version_id


def test_engineer_proposes_approver_approves_and_current_holds_it(
    secret: str, engineer: Any, approver: Any, as_user: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    assert cr.status == "open" and cr.label == f"CR-{cr.pk}" and cr_labels(sm) == [cr.label]
    assert aws.read_current(NAME).version_id == secret  # nothing current before approval
    assert [c["key"] for c in cr.cells] == ["secret_key"] and cr.structure == [
        {"op": "set", "environment": "main", "service": "stripe", "key": "secret_key"}
    ]
    opened = [m for m in mail.outbox if "needs approval" in m.subject]
    assert sorted(opened[0].to) == ["ada@example.test", "alex@example.test"]  # not the author

    client = as_user(approver)
    page = client.get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert page.status_code == HTTPStatus.OK and b"secret_key" in page.content
    response = client.post(
        reverse("secrets_admin:change_request_approve", args=[cr.pk]),
        {"comment": "ok", "reviewed": page.context["reviewed"]},
    )
    assert response.status_code == HTTPStatus.FOUND
    cr.refresh_from_db()
    current = aws.read_current(NAME)
    assert cr.status == "applied" and current.version_id == cr.staged_version == cr.applied_version
    assert current_doc()["main"]["stripe"]["secret_key"] == CANARY
    assert cr_labels(sm) == []
    events = AuditEvent.objects.filter(change_request=cr.pk).exclude(outcome="attempted")
    assert [(e.action, e.outcome, e.actor_username) for e in events] == [
        ("change_request_propose", "succeeded", "erin-engineer"),
        ("change_request_approve", "succeeded", "alex-approver"),
        ("change_request_apply", "succeeded", "alex-approver"),
    ]
    history = client.get(reverse("secrets_admin:secret_history", args=[NAME])).content.decode()
    assert f"change request #{cr.pk} by erin-engineer, approved by alex-approver" in history
    log = client.get(reverse("secrets_admin:audit_log")).content.decode()
    assert "erin-engineer" in log and "alex-approver" in log
    assert {m.subject.rsplit(" ", 1)[1] for m in mail.outbox if m.to == ["erin@example.test"]} == {
        "approved",
        "applied",
    }
    assert audit_verify.verify().ok


@pytest.mark.parametrize("author_role", ["engineer", "approver", "admin"])
def test_self_approval_is_refused_for_every_role(
    secret: str, author_role: str, request: Any, as_user: Any, sm: Any
) -> None:
    author = request.getfixturevalue(author_role)
    cr = propose(author, MAIN_EDIT)
    with pytest.raises(errors.ChangeRequestRefused):
        approve(author, cr)
    response = as_user(author).post(reverse("secrets_admin:change_request_approve", args=[cr.pk]))
    assert response.status_code == HTTPStatus.FORBIDDEN
    cr.refresh_from_db()
    assert cr.status == "open" and not Approval.objects.exists()
    assert aws.read_current(NAME).version_id == secret and cr_labels(sm) == [cr.label]


def test_admin_author_gets_the_self_approval_reason(secret: str, admin: Any) -> None:
    cr = propose(admin, MAIN_EDIT)
    with pytest.raises(errors.SelfApproval, match="a second person has to"):
        approve(admin, cr)
    refused = AuditEvent.objects.get(action="change_request_approve", outcome="failed")
    assert refused.error_code == "SelfApproval" and refused.change_request == cr.pk


def test_one_vote_per_approver_and_required_approvals(
    secret: str, engineer: Any, approver: Any, admin: Any, settings: Any
) -> None:
    settings.PORTAL_REQUIRED_APPROVALS = 2
    cr = propose(engineer, MAIN_EDIT)
    assert approve(approver, cr).status == "open"
    with pytest.raises(errors.ChangeRequestRefused, match="voted on this change request already"):
        approve(approver, cr)
    assert aws.read_current(NAME).version_id == secret
    done = approve(admin, cr)
    assert done.status == "applied" and current_doc()["main"]["stripe"]["secret_key"] == CANARY


def test_rejection_leaves_current_untouched_and_no_label(
    secret: str, engineer: Any, approver: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    with pytest.raises(errors.ChangeRequestRefused, match="comment is required"):
        change_requests.change_request_reject(request_id=cr.pk, context=ctx(approver), comment=" ")
    done = change_requests.change_request_reject(
        request_id=cr.pk, context=ctx(approver), comment="no"
    )
    assert done.status == "rejected"
    assert aws.read_current(NAME).version_id == secret and cr_labels(sm) == []
    assert current_doc() == STANDARD_DOC
    with pytest.raises(errors.ChangeRequestRefused, match="no longer open"):
        approve(approver, cr)
    assert "rejected" in mail.outbox[-1].subject and mail.outbox[-1].to == ["erin@example.test"]


def test_request_page_lists_votes_in_the_past_tense(
    secret: str, engineer: Any, approver: Any, as_user: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    change_requests.change_request_reject(request_id=cr.pk, context=ctx(approver), comment="no")
    page = as_user(engineer).get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert page.status_code == HTTPStatus.OK
    assert b"alex-approver rejected, <time" in page.content
    assert b"rejectd" not in page.content


def test_sandbox_edit_between_proposal_and_approval_is_kept_by_a_rebase(
    secret: str, engineer: Any, approver: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    other = save(engineer, Edit("set", "sandbox", "stripe", "public_key", "pk_sand_2"))
    done = approve(approver, cr)
    assert done.status == "applied"
    current = aws.read_current(NAME)
    assert (
        current.version_id == done.applied_version not in (cr.staged_version, other.new_version_id)
    )
    doc = current_doc()
    assert doc["sandbox"]["stripe"]["public_key"] == "pk_sand_2"  # preserved
    assert doc["main"]["stripe"]["secret_key"] == CANARY
    assert cr_labels(sm) == []
    modes = [
        (e.outcome, e.detail.get("mode"))
        for e in AuditEvent.objects.filter(action="change_request_apply").exclude(
            outcome="attempted"
        )
    ]
    assert modes == [("failed", "promote"), ("succeeded", "rebase")] or modes == [
        ("succeeded", "rebase")
    ]


def test_conflicting_main_edit_marks_the_request_conflicted(
    secret: str, engineer: Any, approver: Any, admin: Any, sm: Any, as_user: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    page = as_user(approver).get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert b"will conflict" not in page.content
    # Someone else changes the same main cell (e.g. through another, approved request).
    other = propose(admin, Edit("set", "main", "stripe", "secret_key", "sk_live_theirs"))
    approve(approver, other)
    theirs = aws.read_current(NAME).version_id
    page = as_user(approver).get(reverse("secrets_admin:change_request_detail", args=[cr.pk]))
    assert b"will conflict" in page.content
    done = approve(approver, cr)
    assert done.status == "conflicted" and "main / stripe / secret_key" in done.outcome_message
    assert aws.read_current(NAME).version_id == theirs  # nothing applied
    assert current_doc()["main"]["stripe"]["secret_key"] == "sk_live_theirs"
    assert cr_labels(sm) == []
    assert AuditEvent.objects.filter(
        action="change_request_apply", outcome="conflicted", change_request=cr.pk
    ).exists()
    told = mail.outbox[-1]
    assert told.to == ["erin@example.test"] and "conflicted" in told.subject


def test_mixed_changeset_becomes_one_request_and_nothing_is_saved(
    secret: str, engineer: Any, approver: Any
) -> None:
    result = editor.secret_save_changes(
        name=NAME,
        base_version_id=secret,
        changeset=[Edit("set", "dev", "stripe", "public_key", "pk_dev_2"), MAIN_EDIT],
        context=ctx(engineer),
        change_id=protocol.new_change_id(user=engineer, name=NAME, base_version_id=secret),
    )
    assert isinstance(result, ChangeRequest) and result.environments == ["dev", "main"]
    assert aws.read_current(NAME).version_id == secret
    approve(approver, result)
    doc = current_doc()
    assert doc["dev"]["stripe"]["public_key"] == "pk_dev_2"
    assert doc["main"]["stripe"]["secret_key"] == CANARY


def test_submit_saves_directly_without_protected_environments(secret: str, engineer: Any) -> None:
    result = editor.secret_save_changes(
        name=NAME,
        base_version_id=secret,
        changeset=[Edit("set", "dev", "stripe", "public_key", "pk_dev_2")],
        context=ctx(engineer),
        change_id=protocol.new_change_id(user=engineer, name=NAME, base_version_id=secret),
    )
    assert isinstance(result, protocol.SaveResult) and not ChangeRequest.objects.exists()


def test_double_submit_of_a_proposal_opens_one_request(secret: str, engineer: Any, sm: Any) -> None:
    change_id = protocol.new_change_id(user=engineer, name=NAME, base_version_id=secret)
    first, second = (
        change_requests.change_request_propose(
            name=NAME,
            base_version_id=secret,
            changeset=[MAIN_EDIT],
            context=ctx(engineer),
            change_id=change_id,
        )
        for _ in range(2)
    )
    assert first.pk == second.pk and ChangeRequest.objects.count() == 1
    assert len(aws.list_versions(NAME)) == 2


def test_only_the_author_cancels_and_the_label_goes(
    secret: str, engineer: Any, admin: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    with pytest.raises(errors.ChangeRequestRefused, match="Only the author"):
        change_requests.change_request_cancel(request_id=cr.pk, context=ctx(admin))
    assert change_requests.change_request_cancel(
        request_id=cr.pk, context=ctx(engineer)
    ).status == ("cancelled")
    assert cr_labels(sm) == [] and aws.read_current(NAME).version_id == secret


def test_label_quota_is_refused_clearly_before_staging(secret: str, engineer: Any, sm: Any) -> None:
    opened = 0
    with pytest.raises(errors.LabelLimit) as refused:
        for i in range(25):
            propose(engineer, Edit("set", "main", "stripe", "secret_key", f"v{i}"), base=secret)
            opened += 1
    # AWSCURRENT + 18 CR labels = 19, and one label is kept for ordinary saves: 20.
    print(f"\nlabel quota: {opened} open change requests fit on a fresh secret")
    assert opened == 18 and len(cr_labels(sm)) == 18
    assert "19 of the 20 staging labels" in refused.value.message
    assert "Approve, reject or cancel an open change request" in refused.value.message
    assert len(aws.list_versions(NAME)) == 19  # the refused one staged nothing


def test_label_guard_counts_every_label_of_the_secret(secret: str, engineer: Any, sm: Any) -> None:
    # 18 request labels + AWSCURRENT + the saves' temporary label = 20, AWS's quota.
    for label in [f"CR-x{i}" for i in range(18)] + [aws.STAGING_LABEL]:
        sm.update_secret_version_stage(SecretId=NAME, VersionStage=label, MoveToVersionId=secret)
    with pytest.raises(errors.LabelLimit, match="20 of the 20"):
        propose(engineer, MAIN_EDIT, base=secret)
    sm.update_secret_version_stage(SecretId=NAME, VersionStage="CR-x0", RemoveFromVersionId=secret)
    assert propose(engineer, MAIN_EDIT, base=secret).status == ChangeRequest.Status.OPEN


def test_expiry_marks_expired_and_removes_the_label(
    secret: str, engineer: Any, approver: Any, sm: Any
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    keep = propose(engineer, Edit("set", "main", "stripe", "public_key", "pk2"))
    ChangeRequest.objects.filter(pk=cr.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("change_requests_expire", stdout=open("/dev/null", "w"))  # noqa: SIM115
    cr.refresh_from_db()
    assert cr.status == "expired" and cr_labels(sm) == [keep.label]
    assert AuditEvent.objects.filter(action="change_request_expire", change_request=cr.pk).exists()
    assert "expired" in mail.outbox[-1].subject and mail.outbox[-1].to == ["erin@example.test"]
    with pytest.raises(errors.ChangeRequestRefused):
        approve(approver, cr)


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_decision_refused_for_the_deadline_expires_the_request_at_once(
    secret: str, engineer: Any, approver: Any, as_user: Any, sm: Any, action: str
) -> None:
    cr = propose(engineer, MAIN_EDIT)
    keep = propose(engineer, Edit("set", "main", "stripe", "public_key", "pk2"))
    ChangeRequest.objects.filter(pk=cr.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = as_user(approver).post(
        reverse(f"secrets_admin:change_request_{action}", args=[cr.pk]),
        {"reviewed": reviewed(cr), "comment": "too late"},
    )
    assert refused.status_code == HTTPStatus.CONFLICT and b"expired" in refused.content
    cr.refresh_from_db()
    # Expired on the spot, as the expiry command would: event, label gone, author told.
    assert cr.status == "expired" and not cr.approvals.exists()
    assert cr_labels(sm) == [keep.label] and aws.read_current(NAME).version_id == secret
    expired = AuditEvent.objects.filter(action="change_request_expire", change_request=cr.pk)
    assert [e.outcome for e in expired] == ["succeeded"]
    assert "expired" in mail.outbox[-1].subject and mail.outbox[-1].to == ["erin@example.test"]
    assert CANARY.encode() not in refused.content
    keep.refresh_from_db()
    assert keep.status == "open"
    call_command("change_requests_expire", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert expired.count() == 1  # the command finds nothing left to expire


def test_break_glass_applies_own_request_with_a_reason_and_waits_for_acknowledgement(
    secret: str, admin: Any, approver: Any, engineer: Any, settings: Any, as_user: Any
) -> None:
    cr = propose(admin, MAIN_EDIT)
    with pytest.raises(errors.ChangeRequestRefused, match="not enabled"):
        change_requests.change_request_bypass(request_id=cr.pk, context=ctx(admin), reason="outage")
    settings.PORTAL_BREAK_GLASS_USERS = ["ada-admin"]
    with pytest.raises(errors.ChangeRequestRefused, match="reason"):
        change_requests.change_request_bypass(request_id=cr.pk, context=ctx(admin), reason="")
    other = propose(engineer, Edit("set", "main", "stripe", "public_key", "pk2"))
    with pytest.raises(errors.ChangeRequestRefused, match="only your own"):
        change_requests.change_request_bypass(request_id=other.pk, context=ctx(admin), reason="x")
    done = change_requests.change_request_bypass(
        request_id=cr.pk, context=ctx(admin), reason="outage"
    )
    assert done.status == "bypassed" and aws.read_current(NAME).version_id == cr.staged_version
    assert AuditEvent.objects.filter(action="change_request_bypass", outcome="succeeded").exists()
    listing = as_user(approver).get(reverse("secrets_admin:change_request_list")).content
    assert b"break-glass" in listing and b"outage" in listing
    with pytest.raises(errors.SelfApproval):
        change_requests.change_request_acknowledge(request_id=cr.pk, context=ctx(admin))
    change_requests.change_request_acknowledge(request_id=cr.pk, context=ctx(approver))
    assert not reads.bypasses_to_review().exists()


def test_list_filters_and_grid_shows_pending(
    secret: str, engineer: Any, approver: Any, as_user: Any
) -> None:
    mine = propose(engineer, MAIN_EDIT)
    client = as_user(approver)
    waiting = client.get(reverse("secrets_admin:change_request_list"), {"show": "waiting"})
    assert f"#{mine.pk}".encode() in waiting.content
    own = client.get(reverse("secrets_admin:change_request_list"), {"show": "mine"})
    assert f"#{mine.pk}<".encode() not in own.content
    grid = client.get(reverse("secrets_admin:secret_detail", args=[NAME]))
    assert b"Waiting for approval" in grid.content and f"#{mine.pk}".encode() in grid.content


def test_canary_stays_out_of_request_pages_emails_and_database(
    secret: str, engineer: Any, approver: Any, as_user: Any, settings: Any
) -> None:
    settings.PORTAL_REQUIRED_APPROVALS = 2
    cr = propose(engineer, MAIN_EDIT)
    client = as_user(approver)
    pages = [
        client.get(reverse("secrets_admin:change_request_list")),
        client.get(reverse("secrets_admin:change_request_detail", args=[cr.pk])),
        client.get(reverse("secrets_admin:secret_detail", args=[NAME])),
        client.post(
            reverse("secrets_admin:change_request_approve", args=[cr.pk]),
            {"reviewed": reviewed(cr)},
            follow=True,
        ),
    ]
    for response in pages:
        assert CANARY.encode() not in response.content
        assert b"sk_live_main" not in response.content
    # The approver may reveal the proposed value (audited, with the staged version).
    revealed = client.post(
        reverse("secrets_admin:cell_reveal", args=[NAME]),
        {
            "version_id": cr.staged_version,
            "environment": "main",
            "service": "stripe",
            "key": "secret_key",
            "reason": "reviewing the proposed value",
        },
    )
    assert CANARY.encode() in revealed.content
    assert mail.outbox and all(
        CANARY not in m.body + m.subject and "sk_live_main" not in m.body for m in mail.outbox
    )
    with connection.cursor() as cursor:
        for table in (
            "secrets_admin_changerequest",
            "secrets_admin_approval",
            "secrets_admin_auditevent",
        ):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            assert CANARY not in repr(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_two_approvers_approving_at_once_apply_once(
    make_secret: Any, engineer: Any, approver: Any, admin: Any, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    cr = propose(engineer, MAIN_EDIT)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def vote(user: Any) -> None:
        try:
            barrier.wait()
            done = approve(user, cr)
            outcomes[user.get_username()] = done.status
        except errors.ChangeRequestRefused as exc:
            outcomes[user.get_username()] = f"refused: {exc.message}"
        finally:
            aws.reset_clients()
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=vote, args=(u,)) for u in (approver, admin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    applies = AuditEvent.objects.filter(action="change_request_apply", outcome="succeeded")
    versions = aws.list_versions(NAME)
    print(
        f"\nconcurrent approvals: outcomes={sorted(outcomes.values())} "
        f"apply events={applies.count()} versions={len(versions)} votes="
        f"{Approval.objects.count()} in {elapsed:.2f}s"
    )
    assert sorted(outcomes.values())[0] == "applied"
    assert (
        sorted(outcomes.values())[1].startswith("refused: ")
        and "no longer open" in sorted(outcomes.values())[1]
    )
    assert applies.count() == 1 and Approval.objects.count() == 1
    assert len(versions) == 2  # the original and the staged one, nothing else
    assert aws.read_current(NAME).version_id == cr.staged_version and cr_labels(sm) == []
