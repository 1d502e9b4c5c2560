"""``manage.py audit_ship``: deliver the audit outbox to every audit device, anchor if due."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import audit_anchors, audit_devices


class Command(BaseCommand):
    help = (
        "Deliver the audit events waiting in the outbox to every audit device "
        "(PORTAL_AUDIT_DEVICES) and write a signed anchor when one is due "
        "(PORTAL_AUDIT_ANCHORS). Safe to run alongside the web processes' background shipper: "
        "devices are idempotent on seq. Exits 1 when a device or the anchor sink failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor-now", action="store_true", help="also anchor the head now, due or not"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_devices.ship()
        for name, count in report.delivered.items():
            self.stdout.write(f"{name}: {count} new event(s) delivered")
        anchor = report.anchor
        if options["anchor_now"] and anchor is None:
            anchor = audit_anchors.anchor_now()
        if anchor is not None:
            self.stdout.write(f"anchored event #{anchor.seq} at {anchor.where}")
        self.stdout.write(f"{report.pending} event(s) still in the outbox")
        if report.errors:
            raise CommandError(
                "; ".join(f"{name}: {error}" for name, error in report.errors.items())
            )
