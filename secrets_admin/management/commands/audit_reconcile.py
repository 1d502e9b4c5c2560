"""``manage.py audit_reconcile``: settle attempts left without an outcome."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from secrets_admin import audit_reconcile


class Command(BaseCommand):
    help = (
        "Find audit attempts with no outcome (the process died between the attempt and its "
        "outcome) and settle them by asking Secrets Manager whether the attempt's new version "
        "exists and holds AWSCURRENT. Exits 1 when some could not be decided."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=900,
            metavar="SECONDS",
            help="only attempts at least this old (default 900: leave those in flight alone)",
        )
        parser.add_argument("--dry-run", action="store_true", help="report, record nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        results = audit_reconcile.reconcile(
            older_than=timedelta(seconds=options["older_than"]), dry_run=options["dry_run"]
        )
        undecided = 0
        for r in results:
            verdict = r.outcome.value if r.outcome else "undecided"
            undecided += r.outcome is None
            self.stdout.write(
                f"attempt #{r.attempt} {r.action} {r.secret} {r.new_version}: {verdict}: {r.reason}"
            )
        prefix = "would settle" if options["dry_run"] else "settled"
        self.stdout.write(f"{prefix} {len(results) - undecided}, undecided {undecided}")
        if undecided:
            raise SystemExit(1)
