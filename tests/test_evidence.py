"""Evidence packs (README "Audit you can prove"): one change request's proposal, votes, apply,
version ids and audit events with their chain proof up to a signed anchor, in one JSON file
that verifies offline (no database) and in which any altered byte is detected."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from secrets_admin import audit, audit_anchors, aws, evidence
from secrets_admin.changes import change_requests, protocol
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent, ChangeRequest

from .conftest import STANDARD_DOC
from .test_audit_devices import ANCHORS_BUCKET, make_locked_bucket

pytestmark = [pytest.mark.django_db, pytest.mark.chain]

NAME = "a-secrets"
CANARY = "CANARY-evidence-9d1c"


@pytest.fixture
def anchors(settings: Any, s3: Any) -> None:
    make_locked_bucket(s3, ANCHORS_BUCKET)
    settings.PORTAL_AUDIT_ANCHORS = f"s3:{ANCHORS_BUCKET}/portal"


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


def propose(engineer: Any) -> ChangeRequest:
    """The engineer proposes one production value on ``NAME``."""
    base = aws.read_current(NAME).version_id
    return change_requests.change_request_propose(
        name=NAME,
        base_version_id=base,
        changeset=[Edit("set", "main", "stripe", "secret_key", CANARY)],
        context=audit.Context(user=engineer),
        change_id=protocol.new_change_id(user=engineer, name=NAME, base_version_id=base),
        comment="rotate",
    )


@pytest.fixture
def applied(make_secret: Any, engineer: Any, approver: Any) -> ChangeRequest:
    """A production change request proposed by the engineer and applied by the approver."""
    make_secret(NAME, STANDARD_DOC)
    audit.record(audit.AuditAction.SIGN_IN, context=audit.Context(user=engineer))
    cr = propose(engineer)
    change_requests.change_request_approve(
        request_id=cr.pk,
        context=audit.Context(user=approver),
        comment="ok",
        reviewed=change_requests.change_request_reviewed_token(
            cr, aws.read_current(NAME).version_id
        ),
    )
    cr.refresh_from_db()
    assert cr.status == ChangeRequest.Status.APPLIED
    return cr


def test_the_pack_holds_the_request_votes_versions_events_and_an_anchored_chain(
    anchors: None, applied: ChangeRequest
) -> None:
    pack = json.loads(evidence.build(applied.pk))

    request = pack["change_request"]
    assert (request["id"], request["author_username"], request["status"]) == (
        applied.pk,
        "erin-engineer",
        "applied",
    )
    assert [(v["approver_username"], v["decision"]) for v in request["votes"]] == [
        ("alex-approver", "approve")
    ]
    assert pack["versions"]["applied"] == applied.applied_version != ""
    [proof] = pack["proofs"]  # no anchor between the request's events: one proof
    actions = {e["action"] for e in proof["chain"] if e["seq"] in pack["events"]}
    assert {"change_request_propose", "change_request_approve", "change_request_apply"} <= actions
    assert proof["chain"][0]["seq"] == pack["events"][0]
    assert proof["chain"][-1]["seq"] == proof["anchor"]["seq"] >= pack["events"][-1]
    assert proof["anchor"]["where"].startswith(f"s3://{ANCHORS_BUCKET}/portal/anchors/")
    assert pack["public_key"] == audit_anchors.public_key_text()
    assert CANARY not in json.dumps(pack)  # names and fingerprints, never a value


def test_the_pack_verifies_offline_without_a_database(
    anchors: None, applied: ChangeRequest, tmp_path: Path, django_db_blocker: Any
) -> None:
    path = tmp_path / "pack.json"
    call_command("audit_evidence", str(applied.pk), "-o", str(path), stdout=StringIO())
    out = StringIO()
    with django_db_blocker.block():  # any query would raise
        call_command(
            "audit_verify",
            "--pack",
            str(path),
            "--public-key",
            audit_anchors.public_key_text(),
            stdout=out,
        )
    assert f"evidence pack of change request #{applied.pk} verifies" in out.getvalue()
    assert "stored at s3://" in out.getvalue()
    export = AuditEvent.objects.filter(action="audit_export").get()
    assert export.detail == {"format": "evidence_pack", "change_request": applied.pk}


def test_any_altered_byte_is_detected(anchors: None, applied: ChangeRequest) -> None:
    data = evidence.build(applied.pk)
    evidence.verify_pack(data)
    step = max(1, len(data) // 1500)  # ~1500 positions spread over every part of the file
    for position in [*range(0, len(data), step), len(data) - 2, len(data) - 1]:
        altered = bytearray(data)
        altered[position] ^= 0x01
        with pytest.raises(evidence.EvidenceError):
            evidence.verify_pack(bytes(altered))
    with pytest.raises(evidence.EvidenceError):
        evidence.verify_pack(data + b" ")
    with pytest.raises(evidence.EvidenceError):
        evidence.verify_pack(data[:-2] + b"\n")


def test_a_pack_re_signed_with_another_key_is_refused_against_the_portals_key(
    anchors: None, applied: ChangeRequest, settings: Any
) -> None:
    portal_key = audit_anchors.public_key_text()
    mallory = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    settings.PORTAL_AUDIT_ANCHORS = ""  # mallory cannot write the anchor bucket: signs in place
    settings.PORTAL_AUDIT_SIGNING_KEY = base64.b64encode(mallory).decode()
    forged = evidence.build(applied.pk)
    evidence.verify_pack(forged)  # consistent in itself...
    with pytest.raises(evidence.EvidenceError, match="signed by another key"):
        evidence.verify_pack(forged, trusted_key=portal_key)  # ...but not the portal's


def test_an_edited_event_in_a_re_signed_pack_breaks_the_chain(
    anchors: None, applied: ChangeRequest
) -> None:
    pack = json.loads(evidence.build(applied.pk))
    pack["proofs"][0]["chain"][0]["actor_username"] = "mallory"
    del pack["signature"]
    pack["signature"] = audit_anchors.sign(audit_anchors.canonical_json(pack))
    with pytest.raises(evidence.EvidenceError, match="does not match its hash"):
        evidence.verify_pack(audit_anchors.canonical_json(pack) + b"\n")


def test_without_an_anchor_sink_the_head_is_signed_in_place(applied: ChangeRequest) -> None:
    report = evidence.verify_pack(evidence.build(applied.pk))
    assert report.request_id == applied.pk and [where for _, where in report.anchors] == [""]


def test_the_command_refuses_an_unknown_request_and_names_a_bad_pack(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no change request #999"):
        call_command("audit_evidence", "999", "-o", str(tmp_path / "x.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(CommandError, match="does not verify: the file is not an evidence pack"):
        call_command("audit_verify", "--pack", str(bad))


def test_auditors_download_the_pack_from_the_change_request_page(
    anchors: None, applied: ChangeRequest, as_user: Any, auditor: Any
) -> None:
    client = as_user(auditor)
    page = client.get(reverse("secrets_admin:change_request_detail", args=[applied.pk]))
    url = reverse("secrets_admin:audit_evidence", args=[applied.pk])
    assert f'action="{url}"' in page.content.decode()

    response = client.post(url)

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Disposition"] == (
        f'attachment; filename="evidence-change-request-{applied.pk}.json"'
    )
    report = evidence.verify_pack(response.content, trusted_key=audit_anchors.public_key_text())
    assert report.request_id == applied.pk
    export = AuditEvent.objects.get(action="audit_export")
    assert export.actor == auditor


def test_a_later_pack_reuses_the_first_anchor_after_the_requests_events(
    anchors: None, applied: ChangeRequest, settings: Any
) -> None:
    [first] = json.loads(evidence.build(applied.pk))["proofs"]
    audit.record(audit.AuditAction.SIGN_IN)  # more events, anchored later
    audit_anchors.anchor_now()
    [again] = json.loads(evidence.build(applied.pk))["proofs"]
    assert again == first


def test_a_request_spanning_anchors_gets_one_short_proof_per_anchor(
    anchors: None, make_secret: Any, engineer: Any, approver: Any, settings: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    cr = propose(engineer)
    proposed = audit_anchors.anchor_now()
    for _ in range(30):  # a busy portal between proposal and approval
        audit.record(audit.AuditAction.SIGN_IN)
    audit_anchors.anchor_now()
    for _ in range(5):
        audit.record(audit.AuditAction.SIGN_IN)
    change_requests.change_request_approve(
        request_id=cr.pk,
        context=audit.Context(user=approver),
        reviewed=change_requests.change_request_reviewed_token(
            cr, aws.read_current(NAME).version_id
        ),
    )

    data = evidence.build(cr.pk)
    pack = json.loads(data)

    assert proposed is not None and len(pack["proofs"]) == 2
    assert pack["proofs"][0]["anchor"]["seq"] == proposed.seq  # not the 30 sign-ins after it
    assert pack["proofs"][1]["chain"][0]["seq"] > proposed.seq + 30
    assert evidence.verify_pack(data).events == len(pack["events"])
