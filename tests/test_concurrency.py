"""Many people saving one secret at once, against the moto server: no lost update (the
compare-and-swap on AWSCURRENT).

Each thread is one person with their own boto3 client and database connection, all released
together by a barrier after reading the same base version. The figures are printed (run with
``-s``) and asserted.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from secrets_admin import audit, audit_verify, aws, documents, errors, reads
from secrets_admin.changes import editor, protocol
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "busy-secrets"
THREADS = 20
ROUNDS = 3


def run_threads(work: Callable[[int], None], n: int = THREADS) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            aws.reset_clients()
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def staging_labels(sm: Any) -> list[str]:
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    return [v for v, labels in stages.items() if aws.STAGING_LABEL in labels]


def test_twenty_people_saving_different_cells_all_land(make_secret: Any, sm: Any) -> None:
    make_secret(NAME, {"dev": {"svc": {"seed": "0"}}, "main": {"svc": {"seed": "0"}}})
    base = aws.read_current(NAME).version_id
    barrier = threading.Barrier(THREADS)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    landed: dict[int, str] = {}

    def person(i: int) -> None:
        ctx = audit.Context(extra_actor={"actor_username": f"person-{i}"})
        edit = Edit("set", "dev", "svc", f"k{i:02d}", f"value-{i}")
        barrier.wait()
        version = base
        while True:  # a person re-applies their edit when told to (SaveContended)
            try:
                result = editor.secret_save_changes(
                    name=NAME,
                    base_version_id=version,
                    changeset=[edit],
                    context=ctx,
                    change_id=protocol.new_change_id(user=None, name=NAME, base_version_id=version),
                )
            except errors.SaveContended:
                with lock:
                    outcomes["contended, re-applied"] += 1
                version = aws.read_current(NAME).version_id
                continue
            with lock:
                outcomes["landed"] += 1
                outcomes["rebases"] += result.rebased
                landed[i] = result.new_version_id
            return

    run_threads(person)
    doc = documents.parse(aws.read_current(NAME).text or "")
    present = {k for k in doc["dev"]["svc"] if k.startswith("k")}
    lost = THREADS - sum(
        1 for i in range(THREADS) if doc["dev"]["svc"].get(f"k{i:02d}") == f"value-{i}"
    )
    print(
        f"\ndifferent cells: attempted={THREADS} landed={outcomes['landed']} "
        f"rebases={outcomes['rebases']} re-applied={outcomes['contended, re-applied']} "
        f"conflicted=0 lost={lost}"
    )
    assert lost == 0 and len(present) == THREADS
    assert doc["main"] == {"svc": {"seed": "0"}}
    assert len(set(landed.values())) == THREADS  # one version per save
    assert AuditEvent.objects.filter(action="save", outcome="succeeded").count() == THREADS
    assert not AuditEvent.objects.filter(action="save", outcome="conflicted").exists()
    assert staging_labels(sm) == []
    assert audit_verify.verify().ok


def same_cell_round(base: str, round_: int) -> tuple[list[tuple[int, str]], list[errors.Conflict]]:
    """Twenty people, one base, one cell, released together: who landed, who was told."""
    barrier = threading.Barrier(THREADS)
    lock = threading.Lock()
    winners: list[tuple[int, str]] = []
    conflicts: list[errors.Conflict] = []

    def person(i: int) -> None:
        ctx = audit.Context(extra_actor={"actor_username": f"person-{i}"})
        barrier.wait()
        try:
            result = editor.secret_save_changes(
                name=NAME,
                base_version_id=base,
                changeset=[Edit("set", "dev", "svc", "shared", f"round{round_}-person{i}")],
                context=ctx,
                change_id=protocol.new_change_id(user=None, name=NAME, base_version_id=base),
            )
        except errors.Conflict as conflict:
            with lock:
                conflicts.append(conflict)
            return
        with lock:
            winners.append((i, result.new_version_id))

    run_threads(person)
    return winners, conflicts


def test_twenty_people_saving_the_same_cell_one_wins_each_round(make_secret: Any, sm: Any) -> None:
    make_secret(NAME, {"dev": {"svc": {"shared": "start"}}})
    totals: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        winners, conflicts = same_cell_round(aws.read_current(NAME).version_id, round_)
        current = aws.read_current(NAME)
        value = documents.parse(current.text or "")["dev"]["svc"]["shared"]
        assert len(winners) == 1, winners
        ((winner, version),) = winners
        assert current.version_id == version and value == f"round{round_}-person{winner}"
        assert len(conflicts) == THREADS - 1
        # Every loser is told exactly what clashed: theirs is the winner's value.
        winner_fp = reads.fingerprint(value)
        for conflict in conflicts:
            (cell,) = conflict.cells
            assert cell.theirs.fingerprint == winner_fp != cell.yours.fingerprint
        totals["attempted"] += THREADS
        totals["landed"] += len(winners)
        totals["conflicted"] += len(conflicts)
    lost = totals["attempted"] - totals["landed"] - totals["conflicted"]
    print(
        f"\nsame cell, {ROUNDS} rounds: attempted={totals['attempted']} landed={totals['landed']} "
        f"conflicted={totals['conflicted']} lost={lost}"
    )
    assert lost == 0
    assert AuditEvent.objects.filter(action="save", outcome="succeeded").count() == ROUNDS
    assert AuditEvent.objects.filter(action="save", outcome="conflicted").count() == ROUNDS * (
        THREADS - 1
    )
    assert staging_labels(sm) == []
    assert audit_verify.verify().ok


def test_a_double_submit_racing_itself_creates_one_version(make_secret: Any) -> None:
    make_secret(NAME, {"dev": {"svc": {"k": "v"}}})
    base = aws.read_current(NAME).version_id
    change_id = protocol.new_change_id(user=None, name=NAME, base_version_id=base)
    barrier = threading.Barrier(2)
    results: list[protocol.SaveResult] = []

    def submit(i: int) -> None:
        barrier.wait()
        results.append(
            editor.secret_save_changes(
                name=NAME,
                base_version_id=base,
                changeset=[Edit("set", "dev", "svc", "k", "twice")],
                context=audit.Context(),
                change_id=change_id,
            )
        )

    run_threads(submit, 2)
    assert {r.new_version_id for r in results} == {aws.read_current(NAME).version_id}
    assert len(aws.list_versions(NAME)) == 2
