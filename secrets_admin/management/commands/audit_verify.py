"""``manage.py audit_verify``: walk the audit hash chain; exit 1 naming the first bad event."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import audit


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by an earlier run."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise CommandError(f"--anchor wants SEQ:HASH as printed by audit_verify, not {text!r}")
    return int(seq), digest


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain. Exits 1 and names the first event that does not "
        "match (edited, deleted, inserted or moved). Prints the head as SEQ:HASH: keep it "
        "outside the database and pass it back with --anchor to detect a rewritten chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", help="SEQ:HASH printed by an earlier run")
        parser.add_argument(
            "--no-record",
            action="store_true",
            help="do not append an audit_verify event (e.g. on a read-only copy)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        anchor = parse_anchor(options["anchor"]) if options["anchor"] else None
        result = audit.verify(anchor=anchor)
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
            raise CommandError(
                f"audit chain broken at event #{result.first_bad_seq}: {result.problem} "
                f"({result.checked} events checked before it)"
            )
        self.stdout.write(
            self.style.SUCCESS(f"audit chain intact: {result.checked} events")
            + f"\nhead {result.head_seq}:{result.head_hash}"
        )
