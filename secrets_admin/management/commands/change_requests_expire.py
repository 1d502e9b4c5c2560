"""``manage.py change_requests_expire``: expire open change requests past their date."""

from typing import Any

from django.core.management.base import BaseCommand

from secrets_admin.changes import change_request_apply


class Command(BaseCommand):
    help = (
        "Mark open change requests older than PORTAL_CHANGE_REQUEST_DAYS as expired, remove their "
        "CR-<id> staging labels and email their authors. Run it daily (the list page also does)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        expired = change_request_apply.change_requests_expire()
        self.stdout.write(f"expired {len(expired)} change request(s): {expired}")
