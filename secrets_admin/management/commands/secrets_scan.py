"""``manage.py secrets_scan``: read every unified secret once to fill the list's structure column."""

from typing import Any

from django.core.management.base import BaseCommand

from secrets_admin import listing


class Command(BaseCommand):
    help = "Read each unified secret once and remember its structure (names only) for the list."

    def handle(self, *args: Any, **options: Any) -> None:
        names = [m.name for m in listing.get_listing(refresh=True).secrets]
        read = listing.scan(names)
        self.stdout.write(f"scanned {read} of {len(names)} unified secrets")
