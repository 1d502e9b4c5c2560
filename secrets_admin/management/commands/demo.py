"""``manage.py demo``: the demo on embedded defaults (SQLite, an in-process moto server)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Start an in-process moto server, seed demo secrets and users, and serve the portal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument(
            "--seed-only", action="store_true", help="Seed and exit (needs AWS_ENDPOINT_URL)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.PORTAL_DEMO:
            raise CommandError("The demo runs only with PORTAL_DEMO=1 (make run sets it).")
        from secrets_admin import aws, demo, index, listing

        server = None
        if not options["seed_only"]:
            from moto.server import ThreadedMotoServer

            from secrets_admin import moto_fix

            moto_fix.apply()  # stage-less reads return AWSCURRENT, as on AWS
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
            aws.reset_clients()
            self.stdout.write(f"moto server (fake AWS) on {os.environ['AWS_ENDPOINT_URL']}")
        if server is not None:
            audit_devices_in_use = demo.start_audit_devices(
                str(settings.BASE_DIR / "demo-audit.jsonl")
            )
            self.stdout.write("audit devices: " + ", ".join(audit_devices_in_use))
        demo.create_users()
        created = demo.seed()
        names = [n for n in demo.demo_secrets() if n.endswith(settings.PORTAL_SECRET_SUFFIX)]
        listing.scan(names)
        index.scan()  # the hygiene pages' index (types, fingerprints, dates; no values)
        if "customer-portal-secrets" in created:  # a fresh fake AWS: open one change request
            request_id = demo.seed_change_request()
            self.stdout.write(f"change request #{request_id} by engineer waits for approver")
        self.stdout.write(
            f"seeded {len(created)} secrets; demo users: " + ", ".join(demo.DEMO_USERS)
        )
        if server is not None:
            from secrets_admin import audit_anchors, audit_devices

            audit_devices.ship()
            anchor = audit_anchors.anchor_now()
            if anchor is not None:
                self.stdout.write(f"audit chain anchored at event #{anchor.seq}: {anchor.where}")
        if options["seed_only"]:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Open http://{options['addrport']}/ and sign in as engineer/engineer "
                "(other users on the sign-in page)."
            )
        )
        try:
            call_command("runserver", options["addrport"], use_reloader=False, use_threading=True)
        finally:
            if server is not None:
                server.stop()
