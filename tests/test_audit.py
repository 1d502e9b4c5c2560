"""The audit chain: appends, attempts (fail closed), verification against tampering, settling
attempts left open, and versions changed outside the portal.

Marked ``chain``: ``make test`` runs these on SQLite and again on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction

from secrets_admin import audit, audit_export, audit_reconcile, audit_verify, aws
from secrets_admin.audit import AuditAction, Outcome
from secrets_admin.models import AuditChainHead, AuditEvent, AuditEventImmutable

pytestmark = [pytest.mark.django_db, pytest.mark.chain]

TABLE = AuditEvent._meta.db_table


def make_chain(n: int, **fields: Any) -> list[AuditEvent]:
    return [
        audit.record(
            AuditAction.REVEAL,
            **{
                "secret": "a-secrets",
                "environment": "dev",
                "service": "stripe",
                "key": f"key{i}",
                "detail": {"i": i},
                **fields,
            },
        )
        for i in range(1, n + 1)
    ]


def sql(statement: str, params: list[Any] | None = None) -> None:
    """Tamper the way someone with database access would: raw SQL, around the ORM's guard."""
    with connection.cursor() as cursor:
        cursor.execute(statement.replace("{t}", connection.ops.quote_name(TABLE)), params or [])


# --------------------------------------------------------------------------------------------
# Appending


def test_events_are_numbered_and_each_hash_covers_the_previous_one() -> None:
    events = make_chain(3)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == audit.GENESIS
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    stored = AuditEvent.objects.get(seq=2)
    assert audit.compute_hash(stored) == stored.hash
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (3, events[2].hash)
    assert audit_verify.verify().ok


def test_unknown_action_or_field_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError):
        audit.record("reveal.attempted")
    with pytest.raises(TypeError):
        audit.record(AuditAction.REVEAL, value="CANARY")
    assert not AuditEvent.objects.exists()


def test_values_read_back_differently_are_normalised_so_the_chain_still_verifies() -> None:
    audit.record(
        AuditAction.SAVE,
        key="k" * 400,  # cut to the column's 255
        change_request="7",  # read back as a number
        detail={"ratio": 1e20, "nul": "a\x00b", 3: ("x", None), "ok": True},
    )
    event = AuditEvent.objects.get()
    assert len(event.key) == 255 and event.change_request == 7
    assert event.detail == {"ratio": "1e+20", "nul": "a\ufffdb", "3": ["x", None], "ok": True}
    assert audit_verify.verify().ok


def test_an_event_records_who_and_from_where(rf: Any, engineer: Any) -> None:
    request = rf.get("/", HTTP_USER_AGENT="pytest-agent", REMOTE_ADDR="10.1.2.3")
    request.user = engineer
    request.request_id = "req-1"
    event = audit.record(AuditAction.SIGN_IN, context=audit.Context.from_request(request))
    assert (event.actor, event.actor_username, event.actor_provider) == (
        engineer,
        "erin-engineer",
        "local",
    )
    assert (event.client_ip, event.user_agent, event.request_id) == (
        "10.1.2.3",
        "pytest-agent",
        "req-1",
    )
    assert event.outcome == Outcome.SUCCEEDED


def test_events_cannot_be_changed_or_deleted_through_the_orm() -> None:
    event = make_chain(1)[0]
    event.environment = "main"
    with pytest.raises(AuditEventImmutable):
        event.save()
    with pytest.raises(AuditEventImmutable):
        event.delete()
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.update(environment="main")
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.all().delete()
    assert audit_verify.verify().ok


def test_deleting_a_user_keeps_their_events_and_the_chain(engineer: Any) -> None:
    audit.record(AuditAction.SIGN_IN, context=audit.Context(user=engineer))
    engineer.delete()
    event = AuditEvent.objects.get()
    assert event.actor is None and event.actor_username == "erin-engineer"
    assert audit_verify.verify().ok


# --------------------------------------------------------------------------------------------
# Attempts: fail closed


def test_attempt_records_attempted_then_the_outcome_with_its_fields() -> None:
    with audit.attempt(AuditAction.SAVE, secret="a-secrets", base_version="v1") as handle:
        assert AuditEvent.objects.get().outcome == Outcome.ATTEMPTED
        handle.conflicted(detail={"cells": ["dev/stripe/key"]})
    attempted, outcome = AuditEvent.objects.order_by("seq")
    assert (outcome.action, outcome.outcome, outcome.attempt) == ("save", "conflicted", handle.seq)
    assert (outcome.secret, outcome.base_version) == ("a-secrets", "v1")
    assert attempted.seq == handle.seq


def test_attempt_records_a_failure_with_the_error_code_and_reraises() -> None:
    with pytest.raises(aws.Throttled), audit.attempt(AuditAction.SAVE, secret="a-secrets"):
        raise aws.Throttled(code="ThrottlingException")
    outcome = AuditEvent.objects.get(outcome=Outcome.FAILED)
    assert outcome.error_code == "ThrottlingException" and outcome.attempt == 1


def test_attempt_without_an_outcome_is_an_error_and_stays_open() -> None:
    with (
        pytest.raises(RuntimeError, match="reported no outcome"),
        audit.attempt(AuditAction.SAVE, secret="a-secrets"),
    ):
        pass
    assert list(audit_reconcile.unsettled_attempts(older_than=timedelta(0))) == [
        AuditEvent.objects.get()
    ]


def test_attempt_inside_a_transaction_is_refused() -> None:
    with (
        pytest.raises(RuntimeError, match="inside a transaction"),
        transaction.atomic(),
        audit.attempt(AuditAction.SAVE, secret="a-secrets"),
    ):
        pytest.fail("the body must not run")
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_attempted_event_is_committed_before_the_body_runs() -> None:
    seen: list[int] = []

    def count_from_another_connection() -> None:
        try:
            seen.append(AuditEvent.objects.filter(outcome=Outcome.ATTEMPTED).count())
        finally:
            connections.close_all()

    with audit.attempt(AuditAction.SAVE, secret="a-secrets") as handle:
        thread = threading.Thread(target=count_from_another_connection)
        thread.start()
        thread.join()
        handle.succeeded()
    assert seen == [1]


class BrokenDatabase:
    """Makes audit inserts fail from the ``fail_from``-th one on (1 = the very first)."""

    def __init__(self, monkeypatch: Any, fail_from: int = 1) -> None:
        self.calls = 0
        self.fail_from = fail_from
        original = AuditEvent.save

        def save(event: AuditEvent, *args: Any, **kwargs: Any) -> None:
            self.calls += 1
            if self.calls >= self.fail_from:
                raise RuntimeError("database is down")
            original(event, *args, **kwargs)

        monkeypatch.setattr(AuditEvent, "save", save)


def test_save_reaches_no_aws_when_its_attempt_cannot_be_recorded(
    monkeypatch: Any, make_secret: Any, sm: Any
) -> None:
    """Fail closed on the write path: a tiny save through ``attempt`` never runs its body."""
    make_secret("a-secrets", {"dev": {"s": {"k": "old"}}})
    before = sm.describe_secret(SecretId="a-secrets")["VersionIdsToStages"]
    aws_calls: list[str] = []
    aws.client().meta.events.register(
        "before-call.secrets-manager", lambda model, **kw: aws_calls.append(model.name)
    )
    writes: list[str] = []

    def fake_save(token: str) -> None:
        base = aws.read_current("a-secrets").version_id
        with audit.attempt(AuditAction.SAVE, secret="a-secrets", new_version=token) as handle:
            writes.append(token)
            aws.client().put_secret_value(
                SecretId="a-secrets",
                SecretString='{"dev": {"s": {"k": "new"}}}',
                ClientRequestToken=token,
                VersionStages=["PORTAL_STAGED"],
            )
            aws.client().update_secret_version_stage(
                SecretId="a-secrets",
                VersionStage="AWSCURRENT",
                MoveToVersionId=token,
                RemoveFromVersionId=base,
            )
            handle.succeeded()

    BrokenDatabase(monkeypatch)
    with pytest.raises(audit.AuditUnavailable) as caught:
        fake_save("t" * 32)
    assert "Nothing was changed" in caught.value.message
    assert writes == [] and aws_calls == ["GetSecretValue"]  # the base read only
    assert sm.describe_secret(SecretId="a-secrets")["VersionIdsToStages"] == before
    assert not AuditEvent.objects.exists()


def test_unrecorded_outcome_is_reported_without_claiming_nothing_changed(monkeypatch: Any) -> None:
    BrokenDatabase(monkeypatch, fail_from=2)
    ran = []
    with (
        pytest.raises(audit.AuditOutcomeUnrecorded) as caught,
        audit.attempt(AuditAction.SAVE, secret="a-secrets") as handle,
    ):
        ran.append(True)
        handle.succeeded()
    assert ran == [True]
    assert "A change may have been made" in caught.value.message
    assert list(AuditEvent.objects.values_list("outcome", flat=True)) == ["attempted"]


# --------------------------------------------------------------------------------------------
# Tampering: each names the first bad event


def test_intact_chain_verifies_and_the_command_prints_the_head() -> None:
    events = make_chain(5)
    result = audit_verify.verify()
    assert (result.ok, result.checked, result.head_seq) == (True, 5, 5)
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "intact: 5 events" in out.getvalue()
    assert f"head 5:{events[-1].hash}" in out.getvalue()
    recorded = AuditEvent.objects.get(seq=6)
    assert (recorded.action, recorded.outcome) == ("audit_verify", "succeeded")
    assert recorded.actor_provider == "system"


def assert_broken_at(seq: int, words: str) -> None:
    result = audit_verify.verify()
    assert not result.ok
    assert result.first_bad_seq == seq, result.problem
    assert words in result.problem
    with pytest.raises(CommandError, match=rf"broken at event #{seq}:"):
        call_command("audit_verify", "--no-record")


def test_an_edited_field_is_named() -> None:
    make_chain(6)
    sql("UPDATE {t} SET environment = %s WHERE seq = %s", ["main", 4])
    assert_broken_at(4, "event #4 was altered")


def test_an_edited_field_with_its_hash_recomputed_breaks_at_the_next_event() -> None:
    make_chain(6)
    event = AuditEvent.objects.get(seq=4)
    event.environment = "main"
    sql("UPDATE {t} SET environment = %s, hash = %s WHERE seq = %s", ["main", "f" * 64, 4])
    sql("UPDATE {t} SET hash = %s WHERE seq = %s", [audit.compute_hash(event), 4])
    assert_broken_at(5, "event #5 does not follow event #4")


def test_a_deleted_row_is_named() -> None:
    make_chain(6)
    sql("DELETE FROM {t} WHERE seq = %s", [3])
    assert_broken_at(3, "event #3 is missing")


def test_deleted_rows_at_the_end_are_named() -> None:
    make_chain(6)
    sql("DELETE FROM {t} WHERE seq >= %s", [5])
    assert_broken_at(5, "event #5 is missing")


def test_a_deleted_row_with_the_rest_renumbered_is_named() -> None:
    make_chain(6)
    sql("DELETE FROM {t} WHERE seq = %s", [3])
    sql("UPDATE {t} SET seq = seq - 1 WHERE seq > %s", [3])
    assert_broken_at(3, "event #3 does not follow event #2")


def test_an_inserted_row_is_named_where_the_chain_breaks() -> None:
    """The forger renumbers the events after it and gives the row a correct hash of its own;
    without a key that row cannot be told from a real one, so the first bad event is the one
    after it, which no longer follows."""
    make_chain(6)
    sql("UPDATE {t} SET seq = seq + 1000000 WHERE seq >= %s", [4])
    sql("UPDATE {t} SET seq = seq - 999999 WHERE seq >= %s", [1000000])
    forged = AuditEvent(
        seq=4,
        created=AuditEvent.objects.get(seq=3).created,
        action="reveal",
        outcome="succeeded",
        actor_username="mallory",
        secret="a-secrets",
        prev_hash=AuditEvent.objects.get(seq=3).hash,
    )
    forged.hash = audit.compute_hash(forged)
    forged.save(force_insert=True)
    AuditChainHead.objects.filter(pk=1).update(seq=7)
    assert_broken_at(5, "event #5 does not follow event #4")


def test_a_row_added_beyond_the_head_is_named() -> None:
    events = make_chain(3)
    forged = AuditEvent(
        seq=4,
        created=events[-1].created,
        action="reveal",
        outcome="succeeded",
        prev_hash=events[-1].hash,
    )
    forged.hash = audit.compute_hash(forged)
    forged.save(force_insert=True)
    assert_broken_at(4, "event #4 lies beyond the chain head")


def test_two_swapped_rows_are_named() -> None:
    make_chain(6)
    sql("UPDATE {t} SET seq = %s WHERE seq = %s", [-1, 3])
    sql("UPDATE {t} SET seq = %s WHERE seq = %s", [3, 4])
    sql("UPDATE {t} SET seq = %s WHERE seq = %s", [4, -1])
    assert_broken_at(3, "event #3 does not follow event #2")


def test_an_altered_head_is_named() -> None:
    make_chain(3)
    AuditChainHead.objects.filter(pk=1).update(hash="e" * 64)
    assert_broken_at(3, "the chain head does not match")


def test_an_anchor_catches_a_chain_rewritten_up_to_it() -> None:
    events = make_chain(4)
    anchor = f"3:{events[2].hash}"
    call_command("audit_verify", "--no-record", "--anchor", anchor, stdout=StringIO())
    # Rewrite event 2 and recompute every hash after it, head included: only the anchor sees it.
    sql("UPDATE {t} SET environment = %s WHERE seq = %s", ["main", 2])
    prev = AuditEvent.objects.get(seq=1).hash
    for seq in (2, 3, 4):
        event = AuditEvent.objects.get(seq=seq)
        event.prev_hash = prev
        prev = audit.compute_hash(event)
        sql("UPDATE {t} SET prev_hash = %s, hash = %s WHERE seq = %s", [event.prev_hash, prev, seq])
    AuditChainHead.objects.filter(pk=1).update(hash=prev)
    assert audit_verify.verify().ok
    with pytest.raises(CommandError, match=r"broken at event #3: .*anchor"):
        call_command("audit_verify", "--no-record", "--anchor", anchor)


def test_a_broken_chain_check_is_recorded_as_failed() -> None:
    make_chain(3)
    sql("UPDATE {t} SET key = %s WHERE seq = %s", ["other", 2])
    with pytest.raises(CommandError):
        call_command("audit_verify")
    event = AuditEvent.objects.get(action="audit_verify")
    assert event.outcome == "failed" and event.detail["first_bad_seq"] == 2


def test_an_export_line_carries_what_is_needed_to_check_its_hash() -> None:
    make_chain(3, detail={"n": 1.5})
    for line in audit_export.export_jsonl(AuditEvent.objects.all()):
        item = json.loads(line)
        assert audit.compute_hash(item) == item["hash"]


# --------------------------------------------------------------------------------------------
# Settling attempts without an outcome


def cas_write(sm: Any, name: str, token: str, *, promote: bool) -> None:
    """The portal's write path as the CAS protocol makes it: stage, then move AWSCURRENT."""
    base = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
    sm.put_secret_value(
        SecretId=name,
        SecretString='{"dev": {}}',
        ClientRequestToken=token,
        VersionStages=["STAGED"],
    )
    if promote:
        sm.update_secret_version_stage(
            SecretId=name,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=base,
        )


def open_attempt(action: AuditAction, **fields: Any) -> AuditEvent:
    return audit.record(action, outcome=Outcome.ATTEMPTED, **fields)


def test_reconcile_settles_open_attempts_by_asking_secrets_manager(
    make_secret: Any, sm: Any, engineer: Any
) -> None:
    make_secret("a-secrets", {"dev": {}})
    landed, staged, missing = "a" * 32, "b" * 32, "c" * 32
    cas_write(sm, "a-secrets", landed, promote=True)
    cas_write(sm, "a-secrets", staged, promote=False)
    ctx = audit.Context(user=engineer)
    a1 = open_attempt(AuditAction.SAVE, context=ctx, secret="a-secrets", new_version=landed)
    a2 = open_attempt(AuditAction.SAVE, context=ctx, secret="a-secrets", new_version=staged)
    a3 = open_attempt(AuditAction.ENVIRONMENT_RESTORE, secret="a-secrets", new_version=missing)
    a4 = open_attempt(AuditAction.REVEAL, secret="a-secrets", key="k")
    a5 = open_attempt(AuditAction.SAVE, secret="a-secrets")  # no version to look up
    settled_before = audit.record(AuditAction.SAVE, secret="a-secrets", attempt=a5.seq - 99)

    out = StringIO()
    with pytest.raises(SystemExit) as exited:  # a5 stays undecided
        call_command("audit_reconcile", "--older-than", "0", stdout=out)
    assert exited.value.code == 1
    outcomes = {e.attempt: e for e in AuditEvent.objects.filter(seq__gt=settled_before.seq)}
    assert outcomes[a1.seq].outcome == "succeeded"
    assert outcomes[a1.seq].actor == engineer and outcomes[a1.seq].new_version == landed
    assert outcomes[a1.seq].detail["settled_by"] == "audit_reconcile"
    assert "AWSCURRENT" in outcomes[a1.seq].detail["stages"]
    assert outcomes[a2.seq].outcome == "failed"
    assert "never held AWSCURRENT" in outcomes[a2.seq].detail["reason"]
    assert outcomes[a3.seq].outcome == "failed"
    assert "never reached" in outcomes[a3.seq].detail["reason"]
    assert outcomes[a4.seq].outcome == "failed"
    assert "not returned" in outcomes[a4.seq].detail["reason"]
    assert a5.seq not in outcomes
    summary = AuditEvent.objects.get(action="audit_reconcile")
    assert summary.detail["settled"] == 4 and summary.detail["undecided"] == 1
    assert "settled 4, undecided 1" in out.getvalue()
    assert audit_verify.verify().ok
    # Run again: nothing is settled twice.
    results = audit_reconcile.reconcile(older_than=timedelta(0))
    assert [r.attempt for r in results] == [a5.seq]


def test_reconcile_counts_a_version_since_replaced_as_succeeded(make_secret: Any, sm: Any) -> None:
    make_secret("a-secrets", {"dev": {}})
    first, second = "d" * 32, "e" * 32
    cas_write(sm, "a-secrets", first, promote=True)
    cas_write(sm, "a-secrets", second, promote=True)
    attempt = open_attempt(AuditAction.SAVE, secret="a-secrets", new_version=first)
    [result] = audit_reconcile.reconcile(older_than=timedelta(0))
    assert (result.attempt, result.outcome) == (attempt.seq, Outcome.SUCCEEDED)
    assert "AWSPREVIOUS" in result.reason


def test_reconcile_leaves_recent_attempts_and_dry_run_records_nothing(
    make_secret: Any, sm: Any
) -> None:
    make_secret("a-secrets", {"dev": {}})
    open_attempt(AuditAction.SAVE, secret="a-secrets", new_version="f" * 32)
    assert audit_reconcile.reconcile() == []  # younger than 15 minutes: may still be in flight
    [result] = audit_reconcile.reconcile(older_than=timedelta(0), dry_run=True)
    assert result.outcome == Outcome.FAILED
    assert AuditEvent.objects.count() == 1


def test_reconcile_leaves_an_attempt_open_when_aws_cannot_answer(make_secret: Any) -> None:
    open_attempt(AuditAction.SAVE, secret="gone-secrets", new_version="f" * 32)
    [result] = audit_reconcile.reconcile(older_than=timedelta(0))
    assert result.outcome is None and "can't find" in result.reason
    assert AuditEvent.objects.count() == 1


# --------------------------------------------------------------------------------------------
# Versions changed outside the portal


def test_versions_no_event_names_are_outside_the_portal(make_secret: Any, sm: Any) -> None:
    make_secret("a-secrets", {"dev": {}})
    created = sm.get_secret_value(SecretId="a-secrets", VersionStage="AWSCURRENT")["VersionId"]
    ours, conflicted, console = "1" * 32, "2" * 32, "3" * 32
    for token in (ours, conflicted, console):
        cas_write(sm, "a-secrets", token, promote=token != conflicted)
    with audit.attempt(AuditAction.SAVE, secret="a-secrets", new_version=ours) as handle:
        handle.succeeded()
    with audit.attempt(AuditAction.SAVE, secret="a-secrets", new_version=conflicted) as handle:
        handle.conflicted()
    audit.record(AuditAction.SAVE, secret="b-secrets", new_version=console)  # another secret
    versions = [v["VersionId"] for v in aws.list_versions("a-secrets")]
    assert sorted(versions) == sorted([created, ours, conflicted, console])
    assert audit_reconcile.versions_outside_portal("a-secrets", versions) == {created, console}
    assert audit_reconcile.versions_outside_portal("a-secrets", []) == set()
