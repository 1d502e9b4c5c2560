"""``manage.py audit_verify``: walk the audit hash chain; exit 1 at the first bad event."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from secrets_admin import audit


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and report the first event that does not match."

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit.verify()
        if not result.ok:
            raise CommandError(
                f"audit chain broken at event #{result.first_bad_seq}: {result.problem} "
                f"({result.checked} events checked before it)"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {result.checked} events"))
