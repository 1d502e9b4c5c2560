"""``manage.py audit_verify``: walk the audit hash chain against the signed anchors; exit 1
naming the first bad event. ``--pack FILE`` checks an evidence pack offline instead."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import audit, audit_anchors, audit_verify, evidence


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by an earlier run."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise CommandError(f"--anchor wants SEQ:HASH as printed by audit_verify, not {text!r}")
    return int(seq), digest


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain against the signed anchors in the anchor sink "
        "(PORTAL_AUDIT_ANCHORS). Exits 1 and names the first bad event: edited, deleted, "
        "inserted or moved; history rewritten; log truncated; anchor forged. With --pack FILE, "
        "check an evidence pack offline instead (no database needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", help="SEQ:HASH printed by an earlier run")
        parser.add_argument(
            "--no-record",
            action="store_true",
            help="do not append an audit_verify event (e.g. on a read-only copy)",
        )
        parser.add_argument("--pack", help="an evidence pack to check offline")
        parser.add_argument(
            "--public-key",
            help="with --pack: the portal's public key (base64, from its chain check page)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["pack"]:
            self.check_pack(Path(options["pack"]), options["public_key"])
            return
        anchor = parse_anchor(options["anchor"]) if options["anchor"] else None
        result = audit_anchors.verify_with_anchors()
        if anchor is not None and result.ok:
            result = audit_verify.verify(anchor=anchor)
        if not options["no_record"]:
            try:
                audit.record(
                    audit.AuditAction.AUDIT_VERIFY,
                    context=audit.Context.system("manage.py audit_verify"),
                    outcome=audit.Outcome.SUCCEEDED if result.ok else audit.Outcome.FAILED,
                    detail=result.as_detail(),
                )
            except audit.AuditUnavailable:
                self.stderr.write("warning: this check could not be recorded in the audit log")
        if not result.ok:
            where = f" at event #{result.first_bad_seq}" if result.first_bad_seq else ""
            raise CommandError(
                f"audit chain broken{where}: {result.problem} "
                f"({result.checked} events checked before it)"
            )
        if result.anchor_problem:
            raise CommandError(
                f"audit chain intact ({result.checked} events) but not checked against its "
                f"anchors: {result.anchor_problem}"
            )
        anchored = (
            f", {result.anchors} signed anchor(s) match, the newest at event #{result.anchored_seq}"
            if result.anchors
            else ""
        )
        self.stdout.write(
            self.style.SUCCESS(f"audit chain intact: {result.checked} events{anchored}")
            + f"\nhead {result.head_seq}:{result.head_hash}"
        )

    def check_pack(self, path: Path, public_key: str | None) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            report = evidence.verify_pack(data, trusted_key=public_key)
        except evidence.EvidenceError as exc:
            raise CommandError(f"evidence pack {path} does not verify: {exc}") from None
        anchors = "; ".join(
            f"#{seq} stored at {where or '(nowhere: signed at export)'}"
            for seq, where in report.anchors
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"evidence pack of change request #{report.request_id} verifies: "
                f"{report.events} event(s), each chained to a signed anchor"
            )
            + f"\nanchors: {anchors}"
            + f"\nsigned by {report.fingerprint}"
            + ("" if public_key else " (compare with the portal's chain check page)")
        )
