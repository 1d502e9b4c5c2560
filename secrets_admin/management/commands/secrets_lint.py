"""``manage.py secrets_lint``: the compliance findings for CI (text or JSON, exit status)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from secrets_admin import aws, compliance, index, lint
from secrets_admin.hygiene import adoption as hygiene_adoption

#: Exit statuses: 0 clean (or warnings only), 1 findings at or above ``--fail-on``, 2 not run.
EXIT_FINDINGS = 1
EXIT_UNAVAILABLE = 2


class Command(BaseCommand):
    help = (
        "Check every secret of the account against the unified-secrets standard and print the "
        "findings (never a value). Exits 1 when there are errors (or warnings with "
        "--fail-on warning), 2 when AWS cannot be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["text", "json"], default="text")
        parser.add_argument(
            "--secret",
            action="append",
            default=[],
            metavar="NAME",
            help="Only findings about this unified secret and its legacy secrets (repeatable).",
        )
        parser.add_argument(
            "--fail-on",
            choices=compliance.SEVERITIES,
            default="error",
            help="The least severity that makes the exit status non-zero (default: error).",
        )
        parser.add_argument(
            "--base-url", default="", help="Prefix for fix links, e.g. https://portal.example."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # Reuse, staleness and adoption come from the hygiene index: bring it up to date
            # first (it reads only the versions that changed since the last refresh).
            index.scan()
            report = lint.run(use_cache=False)
        except aws.AwsError as exc:
            raise CommandError(exc.message, returncode=EXIT_UNAVAILABLE) from None
        findings = report.findings
        if options["secret"]:
            findings = lint.for_secrets(findings, options["secret"])
        base = options["base_url"].rstrip("/")
        if options["format"] == "json":
            adoption = hygiene_adoption.adoption(visible=None)
            if options["secret"]:
                adoption = [row for row in adoption if row.secret in options["secret"]]
            data = lint.as_json(report, findings, adoption)
            for item in data["findings"]:
                item["fix_url"] = base + item["fix_url"] if item["fix_url"] else ""
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self._write_text(report, findings, base)
        failing = compliance.SEVERITIES[: compliance.SEVERITIES.index(options["fail_on"]) + 1]
        bad = sum(1 for f in findings if f.severity in failing)
        if bad:
            raise CommandError(
                f"{bad} finding{'s' if bad != 1 else ''} at or above {options['fail_on']}",
                returncode=EXIT_FINDINGS,
            )

    def _write_text(
        self, report: lint.Report, findings: list[compliance.Finding], base: str
    ) -> None:
        for f in findings:
            where = f" [{f.location}]" if f.location else ""
            url = lint.fix_url(f)
            line = (
                f"{f.severity.upper():7} {f.rule}  {f.secret or '(settings)'}{where}: {f.message}"
            )
            if url:
                line += f"\n        fix: {base}{url}"
            self.stdout.write(line)
        n = compliance.counts(findings)
        self.stdout.write(
            f"{n['error']} error(s), {n['warning']} warning(s); {report.secrets_listed} secrets "
            f"listed, {report.values_read} unified secret value(s) read."
        )
