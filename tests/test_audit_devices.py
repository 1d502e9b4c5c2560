"""Audit devices and signed anchors (README "Audit you can prove"): every event reaches the
file, S3 (Object Lock) and CloudWatch Logs devices through the outbox, at least once and
idempotent on ``seq``; writes are refused when the devices lag; signed anchors kept in S3 or
CloudWatch catch what the chain alone cannot (truncation, a rewrite with recomputed hashes,
a forged anchor, a gap), and Object Lock refuses to delete them.

AWS is moto's server over HTTP (S3 and CloudWatch Logs), as for Secrets Manager.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta
from http import HTTPStatus
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from secrets_admin import audit, audit_anchors, audit_devices, audit_export, audit_verify, aws
from secrets_admin.audit import AuditAction
from secrets_admin.models import AuditChainHead, AuditDeviceCursor, AuditEvent, AuditOutbox

from .test_security_headers import production_env, run_python
from .test_views_secrets import CANARY_DOC, _reveal

pytestmark = [pytest.mark.django_db]

EVENTS_BUCKET = "portal-audit-events"
ANCHORS_BUCKET = "portal-audit-anchors"
LOG_GROUP = "/secrets-portal/audit"
TABLE = AuditEvent._meta.db_table


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def make_locked_bucket(s3: Any, name: str) -> None:
    """A bucket as README asks for: Object Lock on, default retention COMPLIANCE."""
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return _client("s3", moto_endpoint)


@pytest.fixture
def logs(moto_endpoint: str) -> Any:
    return _client("logs", moto_endpoint)


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "events.jsonl"


@pytest.fixture
def devices(settings: Any, s3: Any, logs: Any, audit_file: Path) -> dict[str, Any]:
    """A file, an Object-Lock S3 bucket and a CloudWatch stream as devices; anchors in a
    second Object-Lock bucket every 5 events."""
    make_locked_bucket(s3, EVENTS_BUCKET)
    make_locked_bucket(s3, ANCHORS_BUCKET)
    logs.create_log_group(logGroupName=LOG_GROUP)
    settings.PORTAL_AUDIT_DEVICES = [
        f"file:{audit_file}",
        f"s3:{EVENTS_BUCKET}/portal",
        f"cloudwatch:{LOG_GROUP}:events",
    ]
    settings.PORTAL_AUDIT_ANCHORS = f"s3:{ANCHORS_BUCKET}/portal"
    settings.PORTAL_AUDIT_ANCHOR_EVERY = 5
    settings.PORTAL_AUDIT_MAX_LAG = 60
    return {"s3": s3, "logs": logs, "file": audit_file}


def make_events(n: int) -> list[AuditEvent]:
    return [
        audit.record(AuditAction.REVEAL, secret="a-secrets", environment="dev", key=f"k{i}")
        for i in range(n)
    ]


def file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def s3_event_keys(s3: Any) -> list[str]:
    versions = s3.list_object_versions(Bucket=EVENTS_BUCKET, Prefix="portal/events/")
    return [v["Key"] for v in versions.get("Versions", [])]


def cloudwatch_seqs(logs: Any, stream: str = "events") -> list[int]:
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
    return [json.loads(e["message"])["seq"] for e in events["events"]]


def sql(statement: str, params: list[Any] | None = None) -> None:
    """Tamper the way someone with database access would: raw SQL, around the ORM's guard."""
    with connection.cursor() as cursor:
        cursor.execute(statement.replace("{t}", connection.ops.quote_name(TABLE)), params or [])


def rewrite_from(seq: int, *, actor_username: str) -> None:
    """Rewrite the actor of every event from ``seq`` on and recompute all later hashes and the
    head, as an attacker with database access (but without the signing key) would."""
    prev = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else audit.GENESIS
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        event.actor_username, event.prev_hash = actor_username, prev
        event.hash = audit.compute_hash(event)
        sql(
            "UPDATE {t} SET actor_username = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [actor_username, prev, event.hash, event.seq],
        )
        prev = event.hash
    AuditChainHead.objects.filter(pk=1).update(hash=prev)


def truncate_after(seq: int) -> None:
    """Delete every event after ``seq`` and wind the head back to it (raw SQL)."""
    sql("DELETE FROM {t} WHERE seq > %s", [seq])
    AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=AuditEvent.objects.get(seq=seq).hash)


# --------------------------------------------------------------------------------------------
# Delivery through the outbox


def test_every_event_reaches_every_device_as_its_export_line(devices: dict[str, Any]) -> None:
    events = make_events(3)
    assert list(AuditOutbox.objects.values_list("seq", flat=True)) == [e.seq for e in events]

    report = audit_devices.ship()

    assert not report.errors and report.pending == 0 and not AuditOutbox.objects.exists()
    exported = [json.loads(line) for line in audit_export.export_jsonl(AuditEvent.objects.all())]
    assert file_lines(devices["file"]) == exported
    for line in exported:  # each device line checks against its own hash, no key needed
        assert audit.compute_hash(line) == line["hash"]
    assert s3_event_keys(devices["s3"]) == [f"portal/events/{e.seq:020d}.json" for e in events]
    body = devices["s3"].get_object(Bucket=EVENTS_BUCKET, Key=f"portal/events/{1:020d}.json")
    assert json.loads(body["Body"].read()) == exported[0]
    assert cloudwatch_seqs(devices["logs"]) == [1, 2, 3]


def test_an_event_and_its_outbox_row_commit_or_roll_back_together(devices: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record(AuditAction.SIGN_IN)
        raise RuntimeError("the caller's transaction fails")
    assert not AuditEvent.objects.exists() and not AuditOutbox.objects.exists()


def test_without_devices_nothing_goes_to_the_outbox() -> None:
    make_events(2)
    assert not AuditOutbox.objects.exists()
    assert audit_devices.ship().delivered == {}


def test_duplicate_delivery_writes_nothing_twice(devices: dict[str, Any]) -> None:
    """A shipper that died after delivering but before moving its cursor delivers again:
    each device keeps one copy per seq."""
    events = make_events(4)
    audit_devices.ship()
    AuditDeviceCursor.objects.all().delete()
    AuditOutbox.objects.bulk_create(AuditOutbox(seq=e.seq, created=e.created) for e in events)

    report = audit_devices.ship()

    assert set(report.delivered.values()) == {0} and not report.errors
    assert [line["seq"] for line in file_lines(devices["file"])] == [1, 2, 3, 4]
    assert len(s3_event_keys(devices["s3"])) == 4  # one version per key: not written again
    assert cloudwatch_seqs(devices["logs"]) == [1, 2, 3, 4]


def test_the_file_device_skips_what_it_holds_and_mends_a_torn_last_line(
    devices: dict[str, Any],
) -> None:
    make_events(2)
    audit_devices.ship()
    with devices["file"].open("a") as f:
        f.write('{"seq": 3, "torn')  # a crash in the middle of a write
    make_events(1)
    audit_devices.ship()
    lines = devices["file"].read_text().splitlines()
    assert [json.loads(lines[i])["seq"] for i in (0, 1, 3)] == [1, 2, 3]


def test_stdout_device_prints_each_event_as_one_json_line(settings: Any, capsys: Any) -> None:
    settings.PORTAL_AUDIT_DEVICES = ["stdout"]
    make_events(2)
    audit_devices.ship()
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in out] == [1, 2]


def test_a_sink_outage_buffers_events_and_ships_them_after(devices: dict[str, Any]) -> None:
    devices["s3"].delete_bucket(Bucket=EVENTS_BUCKET)  # the S3 device is down
    make_events(3)

    report = audit_devices.ship()

    assert report.errors == {f"s3:{EVENTS_BUCKET}/portal": "AWS NoSuchBucket"}
    assert report.pending == 3  # kept for the device that failed
    assert len(file_lines(devices["file"])) == 3  # the others got them
    assert AuditDeviceCursor.objects.get(name=f"s3:{EVENTS_BUCKET}/portal").error

    make_locked_bucket(devices["s3"], EVENTS_BUCKET)  # back
    report = audit_devices.ship()
    assert not report.errors and report.pending == 0
    assert len(s3_event_keys(devices["s3"])) == 3
    assert len(file_lines(devices["file"])) == 3


def test_writes_are_refused_when_the_devices_lag_past_the_limit(
    devices: dict[str, Any], as_user: Any, engineer: Any, make_secret: Any
) -> None:
    make_secret("a-secrets", CANARY_DOC)
    version = aws.read_current("a-secrets").version_id
    devices["s3"].delete_bucket(Bucket=EVENTS_BUCKET)
    make_events(1)
    audit_devices.ship()
    AuditOutbox.objects.update(created=timezone.now() - timedelta(seconds=61))  # a minute on
    before = AuditEvent.objects.count()

    with pytest.raises(audit.AuditDevicesBehind), audit.attempt(AuditAction.SAVE):
        pytest.fail("the body must not run")
    response = _reveal(as_user(engineer), version)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "FAKE" not in response.content.decode()
    assert AuditEvent.objects.count() == before  # nothing attempted, nothing revealed

    make_locked_bucket(devices["s3"], EVENTS_BUCKET)
    audit_devices.ship()
    assert _reveal(as_user(engineer), version).status_code == HTTPStatus.OK


def test_the_ship_command_reports_and_fails_on_a_device_error(
    devices: dict[str, Any], settings: Any
) -> None:
    make_events(2)
    out = StringIO()
    call_command("audit_ship", stdout=out)
    assert f"file:{devices['file']}: 2 new event(s) delivered" in out.getvalue()
    settings.PORTAL_AUDIT_DEVICES = [*settings.PORTAL_AUDIT_DEVICES, "s3:portal-audit-gone"]
    make_events(1)
    with pytest.raises(CommandError, match="NoSuchBucket"):
        call_command("audit_ship", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_the_background_shipper_delivers_after_commit(settings: Any, audit_file: Path) -> None:
    settings.PORTAL_AUDIT_DEVICES = [f"file:{audit_file}"]
    settings.PORTAL_AUDIT_SHIP_IN_BACKGROUND = True
    settings.PORTAL_AUDIT_SHIP_INTERVAL = 0.2
    make_events(3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        audit_file.exists() and len(file_lines(audit_file)) == 3
    ):
        time.sleep(0.1)
    assert [line["seq"] for line in file_lines(audit_file)] == [1, 2, 3]
    settings.PORTAL_AUDIT_SHIP_IN_BACKGROUND = False
    assert any(t.name == "portal-audit-ship" for t in threading.enumerate())


# --------------------------------------------------------------------------------------------
# Anchors


@pytest.mark.chain
def test_anchors_are_written_every_n_events_and_checked(devices: dict[str, Any]) -> None:
    make_events(4)
    assert audit_devices.ship().anchor is None  # 4 < 5
    make_events(2)
    anchor = audit_devices.ship().anchor
    assert anchor is not None and anchor.seq == 6
    assert anchor.where.startswith(f"s3://{ANCHORS_BUCKET}/portal/anchors/{6:020d}.json?versionId=")
    stored = devices["s3"].head_object(Bucket=ANCHORS_BUCKET, Key=f"portal/anchors/{6:020d}.json")
    assert stored["ObjectLockMode"] == "COMPLIANCE"

    result = audit_anchors.verify_with_anchors()
    assert result.ok and (result.anchors, result.anchored_seq) == (1, 6)
    out = StringIO()
    call_command("audit_verify", "--no-record", stdout=out)
    assert "1 signed anchor(s) match, the newest at event #6" in out.getvalue()


def test_anchors_are_written_after_t_minutes_with_fewer_events(devices: Any) -> None:
    make_events(2)
    assert audit_devices.ship().anchor is None
    AuditDeviceCursor.objects.filter(name__startswith="anchor:").update(
        updated=timezone.now() - timedelta(minutes=16)
    )
    anchor = audit_devices.ship().anchor
    assert anchor is not None and anchor.seq == 2


@pytest.mark.chain
def test_tail_truncation_is_caught_by_the_anchor(devices: Any) -> None:
    make_events(10)
    audit_anchors.anchor_now()
    truncate_after(7)

    assert audit_verify.verify().ok  # the chain alone cannot tell
    result = audit_anchors.verify_with_anchors()

    assert not result.ok and result.first_bad_seq == 8
    assert "ends at event #7 but event #10 was anchored" in result.problem
    assert "truncated" in result.problem
    with pytest.raises(CommandError, match="broken at event #8"):
        call_command("audit_verify", "--no-record", stdout=StringIO())


@pytest.mark.chain
def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_anchor(devices: Any) -> None:
    make_events(5)
    audit_anchors.anchor_now()
    make_events(5)
    audit_anchors.anchor_now()
    rewrite_from(7, actor_username="mallory")

    assert audit_verify.verify().ok  # every hash recomputed: the chain alone cannot tell
    result = audit_anchors.verify_with_anchors()

    assert not result.ok and result.first_bad_seq == 10
    assert "history was rewritten (after event #5, the last anchor that matches)" in result.problem


@pytest.mark.chain
def test_a_forged_anchor_is_caught(devices: dict[str, Any]) -> None:
    """The attacker rewrites history and anchors the new head with a key of their own,
    claiming the portal's public key."""
    make_events(6)
    audit_anchors.anchor_now()
    rewrite_from(2, actor_username="mallory")
    head = AuditChainHead.objects.get(pk=1)
    mallory = Ed25519PrivateKey.generate()
    forged = audit_anchors.Anchor(
        head.seq, head.hash, timezone.now().isoformat(), audit_anchors.public_key_text(), ""
    )
    forged_json = {
        **forged.as_json(),
        "signature": base64.b64encode(mallory.sign(forged.signed_bytes())).decode(),
    }
    devices["s3"].put_object(
        Bucket=ANCHORS_BUCKET,
        Key=f"portal/anchors/{head.seq:020d}.json",
        Body=json.dumps(forged_json),
    )

    result = audit_anchors.verify_with_anchors()

    assert not result.ok and result.first_bad_seq == 6
    assert "is not signed by the portal's key: it was forged" in result.problem


@pytest.mark.chain
def test_a_gap_between_anchors_is_named(devices: Any) -> None:
    make_events(5)
    audit_anchors.anchor_now()
    make_events(5)
    audit_anchors.anchor_now()
    sql("DELETE FROM {t} WHERE seq = 7")

    result = audit_anchors.verify_with_anchors()

    assert not result.ok and result.first_bad_seq == 7
    assert (
        result.problem == "event #7 is missing (deleted) (between the anchors of events #5 and #10)"
    )


def test_anchor_deletion_is_refused_by_object_lock(devices: dict[str, Any]) -> None:
    make_events(3)
    anchor = audit_anchors.anchor_now()
    assert anchor is not None
    key = f"portal/anchors/{anchor.seq:020d}.json"
    s3 = devices["s3"]
    version = s3.head_object(Bucket=ANCHORS_BUCKET, Key=key)["VersionId"]

    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(
                Bucket=ANCHORS_BUCKET, Key=key, VersionId=version, BypassGovernanceRetention=bypass
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # Deleting without a version only lays a delete marker over it: anchors are read by
    # version, so the truncation below is still caught.
    s3.delete_object(Bucket=ANCHORS_BUCKET, Key=key)
    truncate_after(2)
    result = audit_anchors.verify_with_anchors()
    assert not result.ok and result.first_bad_seq == 3


def test_anchors_in_cloudwatch_logs_catch_truncation(settings: Any, logs: Any) -> None:
    logs.create_log_group(logGroupName=LOG_GROUP)
    settings.PORTAL_AUDIT_ANCHORS = f"cloudwatch:{LOG_GROUP}:anchors"
    make_events(4)
    anchor = audit_anchors.anchor_now()
    assert anchor is not None and anchor.where == f"cloudwatch:{LOG_GROUP}:anchors"
    assert audit_anchors.verify_with_anchors().ok
    truncate_after(3)
    result = audit_anchors.verify_with_anchors()
    assert not result.ok and result.first_bad_seq == 4


def test_an_unreadable_anchor_sink_is_reported_not_passed(settings: Any) -> None:
    settings.PORTAL_AUDIT_ANCHORS = "s3:no-such-anchor-bucket"
    make_events(1)
    result = audit_anchors.verify_with_anchors()
    assert result.ok and "could not be read" in result.anchor_problem
    with pytest.raises(CommandError, match="not checked against its anchors"):
        call_command("audit_verify", "--no-record", stdout=StringIO())


def test_the_chain_check_page_shows_anchors_the_public_key_and_the_devices(
    devices: Any, as_user: Any, auditor: Any
) -> None:
    make_events(3)
    audit_anchors.anchor_now()
    from django.urls import reverse

    html = as_user(auditor).post(reverse("secrets_admin:audit_verify")).content.decode()
    assert "The chain is intact" in html
    assert "1 signed anchor read from" in html and "up to #3" in html
    assert audit_anchors.public_key_text() in html
    assert f"<code>file:{devices['file']}</code> (through event #0" in html  # not shipped yet
    truncate_after(2)
    html = as_user(auditor).post(reverse("secrets_admin:audit_verify")).content.decode()
    assert 'href="/audit/events/3/">event #3</a>' in html and "truncated" in html


# --------------------------------------------------------------------------------------------
# Configuration


def test_a_signing_key_is_read_from_pem_or_base64_raw_bytes(settings: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    expected = audit_anchors.public_key_text(key.public_key())
    for text in (base64.b64encode(raw).decode(), pem.decode()):
        settings.PORTAL_AUDIT_SIGNING_KEY = text
        assert audit_anchors.public_key_text() == expected
    settings.PORTAL_AUDIT_SIGNING_KEY = "not a key"
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="PORTAL_AUDIT_SIGNING_KEY"):
        audit_anchors.signing_key()


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("PORTAL_AUDIT_SIGNING_KEY", "Set PORTAL_AUDIT_SIGNING_KEY"),
        ("PORTAL_AUDIT_DEVICES", "Set PORTAL_AUDIT_DEVICES"),
    ],
)
def test_production_refuses_to_start_without_a_key_or_devices(
    tmp_path: Path, variable: str, message: str
) -> None:
    env = production_env(tmp_path)
    del env[variable]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0 and message in result.stderr


def test_a_bad_device_is_a_system_check_error(settings: Any) -> None:
    from django.core.management import call_command as run

    settings.PORTAL_AUDIT_DEVICES = ["ftp://somewhere"]
    with pytest.raises(Exception, match=r"portal\.E101"):
        run("check", stdout=StringIO(), stderr=StringIO())


@pytest.mark.chain
def test_truncation_after_the_last_anchor_is_caught_by_the_devices(
    devices: dict[str, Any], settings: Any
) -> None:
    make_events(5)
    assert audit_devices.ship().anchor is not None  # anchors event #5
    make_events(2)
    assert audit_devices.ship().anchor is None  # #6 and #7 shipped, not anchored yet
    truncate_after(5)

    result = audit_anchors.verify_with_anchors()

    assert not result.ok and result.first_bad_seq == 6
    assert f"the audit device file:{devices['file']} holds event #7" in result.problem
    for witness in (f"s3:{EVENTS_BUCKET}/portal", f"cloudwatch:{LOG_GROUP}:events"):
        settings.PORTAL_AUDIT_DEVICES = [witness]
        result = audit_anchors.verify_with_anchors()
        assert not result.ok and f"{witness} holds event #" in result.problem


def test_anchors_signed_before_a_key_rotation_verify_with_the_previous_public_key(
    devices: Any, settings: Any
) -> None:
    def raw_key() -> str:
        from cryptography.hazmat.primitives import serialization

        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(raw).decode()

    settings.PORTAL_AUDIT_SIGNING_KEY = raw_key()
    old_public = audit_anchors.public_key_text()
    make_events(3)
    audit_anchors.anchor_now()
    settings.PORTAL_AUDIT_SIGNING_KEY = raw_key()  # rotated

    result = audit_anchors.verify_with_anchors()
    assert not result.ok and "not signed by the portal's key" in result.problem
    settings.PORTAL_AUDIT_PREVIOUS_PUBLIC_KEYS = [old_public]
    assert audit_anchors.verify_with_anchors().ok
