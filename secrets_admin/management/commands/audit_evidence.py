"""``manage.py audit_evidence REQUEST_ID``: write one change request's evidence pack."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import audit, evidence


class Command(BaseCommand):
    help = (
        "Write the evidence pack of one change request (proposal, votes, outcome, version ids, "
        "its audit events with their chain proof up to a signed anchor, the public key) as one "
        "JSON file; check it anywhere with `manage.py audit_verify --pack FILE`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request_id", type=int)
        parser.add_argument("--output", "-o", help="file to write (default: the pack's name)")

    def handle(self, *args: Any, **options: Any) -> None:
        request_id: int = options["request_id"]
        try:
            # Recorded first (fail closed), as the auditor's exports are.
            audit.record(
                audit.AuditAction.AUDIT_EXPORT,
                context=audit.Context.system("manage.py audit_evidence"),
                detail={"format": "evidence_pack", "change_request": request_id},
            )
            data = evidence.build(request_id)
        except (audit.AuditUnavailable, evidence.EvidenceError) as exc:
            raise CommandError(str(exc)) from None
        path = Path(options["output"] or evidence.filename(request_id))
        path.write_bytes(data)
        self.stdout.write(f"wrote {path} ({len(data)} bytes)")
