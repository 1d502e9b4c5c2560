"""``manage.py secrets_scan``: read every unified secret once to fill the list's structure column
and the hygiene index (types, fingerprints, when each cell last changed; never a value)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import aws, index, listing


class Command(BaseCommand):
    help = (
        "Read each unified secret once and remember its structure (names only) for the list; "
        "bring the hygiene index up to date (only versions changed since the last scan are read)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reindex",
            action="store_true",
            help="Re-read every unified secret into the hygiene index, changed or not.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            names = [m.name for m in listing.get_listing(refresh=True).secrets]
            read = listing.scan(names)
            result = index.scan(force=options["reindex"])
        except aws.AwsError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"scanned {read} of {len(names)} unified secrets")
        self.stdout.write(
            f"hygiene index: {result.listed} secrets listed, {result.indexed} re-indexed "
            f"({result.values_read} GetSecretValue), {result.dropped} dropped"
            + (f", unreadable: {', '.join(result.unreadable)}" if result.unreadable else "")
        )
