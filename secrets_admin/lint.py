"""Run the compliance checks over the account: gather through ``aws.py``, check with the pure
``compliance.py``, keep the findings briefly in the cache.

One run costs ceil(N/100) ``ListSecrets`` for the N secrets of the account and one
``GetSecretValue`` per unified secret that has a value (values are needed by the structure,
drift and value rules; they stay in this process's memory for the run and are never cached).
The findings (names, rule ids, messages: never a value) are cached for
``PORTAL_COMPLIANCE_CACHE_SECONDS``. Used by the compliance page and ``manage.py secrets_lint``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse

from . import aws, compliance, documents, listing, permissions
from .hygiene import adoption as hygiene_adoption

CACHE_KEY = "portal:compliance:v1"


@dataclass(frozen=True)
class Report:
    """One run of the checks: findings and what it cost. Holds no value."""

    findings: list[compliance.Finding]
    checked_at: float
    secrets_listed: int
    unified: int
    values_read: int
    required_environments: tuple[str, ...] = ()
    value_rules: tuple[str, ...] = field(default_factory=tuple)
    #: Every listed secret's name and AWS tags, and the names whose value was read: what
    #: :func:`for_user` narrows the report to a person's scope with (names and tags, no value).
    secrets: tuple[permissions.TaggedName, ...] = ()
    read: frozenset[str] = frozenset()

    @property
    def counts(self) -> dict[compliance.Severity, int]:
        return compliance.counts(self.findings)

    @property
    def errors(self) -> int:
        return self.counts["error"]


def policy() -> tuple[compliance.Policy, list[compliance.Finding]]:
    """The :class:`compliance.Policy` from settings, and a finding when ``PORTAL_VALUE_RULES`` is
    malformed (the other checks still run)."""
    problems = []
    config = settings.PORTAL_VALUE_RULES
    try:
        rules = compliance.value_rules(compliance.DEFAULT_VALUE_RULES if config is None else config)
    except ValueError as exc:
        rules = []
        problems.append(compliance.config_finding(str(exc)))
    return (
        compliance.Policy(
            suffix=settings.PORTAL_SECRET_SUFFIX,
            required_environments=tuple(settings.PORTAL_REQUIRED_ENVIRONMENTS),
            value_rules=tuple(rules),
            protected_environments=tuple(settings.PORTAL_PROTECTED_ENVIRONMENTS),
        ),
        problems,
    )


def run(*, use_cache: bool = True) -> Report:
    """The findings for the whole account, from the cache when fresh (and ``use_cache``).

    Raises :class:`~secrets_admin.aws.AwsError` when the account cannot be listed; a secret that
    cannot be read becomes a ``structure.unreadable`` finding instead.
    """
    if use_cache:
        cached = cache.get(CACHE_KEY)
        if isinstance(cached, Report):
            return cached
    pol, problems = policy()
    metas = list(aws.iter_secrets())
    contents: dict[str, documents.Classified | compliance.Unreadable] = {}
    for meta in metas:
        if (
            not meta.name.endswith(pol.suffix)
            or meta.scheduled_for_deletion
            or meta.owning_service
            or not meta.current_version
        ):
            continue
        try:
            value = aws.read_current(meta.name)
        except aws.AwsError as exc:
            contents[meta.name] = compliance.Unreadable(exc.message)
            continue
        classified = listing.classify_value(value)
        listing.remember(meta.name, value.version_id, classified)
        contents[meta.name] = classified
    findings = problems + compliance.check(metas, contents, policy=pol)
    # Reuse, staleness and empty production values come from the hygiene index (no AWS call).
    findings = compliance.sort_findings([*findings, *hygiene_adoption.findings()])
    report = Report(
        findings=findings,
        checked_at=time.time(),
        secrets_listed=len(metas),
        unified=sum(1 for m in metas if m.name.endswith(pol.suffix)),
        values_read=len(contents),
        required_environments=pol.required_environments,
        value_rules=tuple(rule.id for rule in pol.value_rules),
        secrets=tuple(permissions.TaggedName(m.name, m.tags) for m in metas),
        read=frozenset(contents),
    )
    cache.set(CACHE_KEY, report, settings.PORTAL_COMPLIANCE_CACHE_SECONDS)
    return report


def for_user(report: Report, user: Any) -> Report:
    """``report`` as ``user`` may see it: only findings about secrets in their scope (and, for a
    legacy secret, whose unified secret is in it too), with counts of those secrets only.
    Findings about the configuration (no secret) stay. Out-of-scope names never appear."""
    visible = {t.name for t in permissions.visible_secrets(user, report.secrets)}
    if len(visible) == len(report.secrets):
        return report
    findings = [
        f
        for f in report.findings
        if (not f.secret or f.secret in visible) and (not f.related or f.related in visible)
    ]
    suffix = settings.PORTAL_SECRET_SUFFIX
    return replace(
        report,
        findings=findings,
        secrets_listed=len(visible),
        unified=sum(1 for n in visible if n.endswith(suffix)),
        values_read=len(report.read & visible),
        secrets=tuple(t for t in report.secrets if t.name in visible),
        read=report.read & visible,
    )


def invalidate() -> None:
    """Forget the cached findings (the next run reads every secret again)."""
    cache.delete(CACHE_KEY)


def fix_url(finding: compliance.Finding) -> str:
    """The path of the page where ``finding`` is fixed ("" when the portal has none)."""
    if finding.fix is None:
        return ""
    url = reverse(f"secrets_admin:{finding.fix.view}", args=finding.fix.args)
    return f"{url}?{urlencode(finding.fix.query)}" if finding.fix.query else url


def for_secrets(findings: list[compliance.Finding], names: list[str]) -> list[compliance.Finding]:
    """The findings about the named secrets, including legacy secrets that belong in them."""
    wanted = set(names)
    return [f for f in findings if f.secret in wanted or f.related in wanted]


def as_json(
    report: Report,
    findings: list[compliance.Finding],
    adoption: list[hygiene_adoption.AdoptionRow] | None = None,
) -> dict[str, Any]:
    """The JSON shape of ``secrets_lint --format json`` (no value anywhere); ``adoption`` adds
    each repository's adoption of the standard (``hygiene.adoption.adoption``) under ``"adoption"``."""
    extra = {} if adoption is None else {"adoption": [row.as_dict() for row in adoption]}
    return {
        "checked_at": report.checked_at,
        "secrets_listed": report.secrets_listed,
        "unified_secrets": report.unified,
        "values_read": report.values_read,
        "counts": compliance.counts(findings),
        "findings": [{**f.as_dict(), "fix_url": fix_url(f)} for f in findings],
        **extra,
    }
