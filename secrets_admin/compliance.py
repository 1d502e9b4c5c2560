"""Checks of an account's secrets against the unified-secrets standard. Pure: no I/O.

Callers (``lint.py``: the compliance page and ``manage.py secrets_lint``) pass the listing
metadata of every secret, the classified documents of the unified ones and a :class:`Policy`;
:func:`check` returns :class:`Finding` objects. Value rules necessarily look at values: they are
evaluated here and a finding names only the cell and the rule, never the value.

Rules, with the part of the unified-secrets standard behind each:

=================================  =======  =====================================================
rule                               default  why
=================================  =======  =====================================================
naming.repo-name                   warning  "Required Secret Name Pattern": ``{repo-name}-secrets``
naming.near-miss                   warning  the same pattern, misspelt (``-secret``, ``_secrets``)
naming.environment-in-name         warning  "ONE Secret Per Repo": no secret per environment
legacy.fold-into-unified           warning  "DON'T Create Multiple Secrets"; migration checklist
legacy.per-environment             warning  the same, for a repo without a unified secret yet
structure.not-conforming           error    "Required JSON Structure"
structure.no-value                 warning  the app's ``GetSecretValue`` fails until it has one
structure.unreadable               error    the portal could not read it (message says why)
structure.case-conflict            warning  names equal but for case map to one env variable
structure.environment-name         warning  an environment is an Amplify branch (``AWS_BRANCH``)
integration.env-var-clash          warning  two keys map to one ``<SERVICE>_<KEY>`` variable
environments.required-missing      error    "No config found for environment" (Troubleshooting)
drift.missing-cells                warning  a key some environments have and this one lacks
empty.in-protected-environment     warning  an empty value in a protected environment: the app
                                            reads "" where a credential belongs ("needs a value")
values.<id>                        config   ``PORTAL_VALUE_RULES`` (e.g. live keys outside main)
config.value-rules                 error    ``PORTAL_VALUE_RULES`` itself is malformed
reuse.*, stale.*, empty.*          see      found in the hygiene index (``hygiene/__init__.py`` documents them)
=================================  =======  =====================================================
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from . import documents, integration

Severity = Literal["error", "warning"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning")

#: Rule id -> one line of what it checks (shown on the compliance page and by ``--rules``).
RULES: dict[str, str] = {
    "naming.repo-name": "The repo part of a unified secret's name is a plain repo name.",
    "naming.near-miss": "A secret named almost, but not exactly, <repo>-secrets.",
    "naming.environment-in-name": "A unified secret whose name carries an environment.",
    "legacy.fold-into-unified": "A legacy secret (<repo>-<service>-<env>, <repo>-<env>, "
    "<repo>-<service>) beside the repo's unified secret.",
    "legacy.per-environment": "A legacy per-environment secret whose repo has no unified secret.",
    "structure.not-conforming": "The value is not JSON environment -> service -> key -> value.",
    "structure.no-value": "The unified secret has no value yet.",
    "structure.unreadable": "The portal could not read the secret.",
    "structure.case-conflict": "Names that differ only in case.",
    "structure.environment-name": "An environment name that cannot be a branch (AWS_BRANCH).",
    "integration.env-var-clash": "Two keys map to the same <SERVICE>_<KEY> variable.",
    "environments.required-missing": "A required environment (PORTAL_REQUIRED_ENVIRONMENTS) is absent.",
    "drift.missing-cells": "An environment lacks keys that other environments have.",
    "empty.in-protected-environment": "An empty value in a protected environment (needs a value).",
    "values.*": "A value rule of PORTAL_VALUE_RULES matched (the value is never shown).",
    "config.value-rules": "PORTAL_VALUE_RULES is malformed.",
    # From the hygiene index (the hygiene package): fingerprints and dates, never values.
    "reuse.production-elsewhere": "A production credential also held by another environment.",
    "reuse.across-environments": "Two non-production environments share one credential.",
    "reuse.across-repositories": "One credential shared by the secrets of two repositories.",
    "stale.credential": "Credentials unchanged for longer than PORTAL_STALE_DAYS.",
    "empty.production-credential": "An empty value in a production environment.",
}

#: Names often given to environments, besides those found in documents and required ones; they
#: help recognise legacy names such as ``repo-databricks-prod``.
COMMON_ENVIRONMENTS: tuple[str, ...] = (
    *documents.STANDARD_ENVIRONMENTS,
    "uat",
    "qa",
    "test",
    "staging",
    "stage",
    "prod",
    "production",
    "development",
    "develop",
    "preview",
)

#: How many cell names a drift finding lists before "and N more".
DRIFT_LISTED = 5

_REPO_NAME = re.compile(r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$")
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


# --------------------------------------------------------------------------------------------
# Inputs


class ListedSecret(Protocol):
    """What :func:`check` needs of a listed secret (``aws.SecretMeta`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def current_version(self) -> str: ...

    @property
    def owning_service(self) -> str: ...

    @property
    def scheduled_for_deletion(self) -> bool: ...


@dataclass(frozen=True)
class Unreadable:
    """A unified secret the caller could not read; ``message`` says why (no value in it)."""

    message: str


@dataclass(frozen=True)
class ValueRule:
    """A rule on values, from ``PORTAL_VALUE_RULES``.

    It applies to string values in environments matching one of ``environments`` and none of
    ``not_environments`` (shell patterns), and matches a value starting with ``prefix`` or in
    which ``regex`` is found (one of the two is required).
    """

    id: str
    message: str
    severity: Severity = "error"
    prefix: str = ""
    regex: str = ""
    environments: tuple[str, ...] = ("*",)
    not_environments: tuple[str, ...] = ()
    _compiled: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def applies_to(self, environment: str) -> bool:
        def hit(patterns: Iterable[str]) -> bool:
            return any(fnmatch.fnmatchcase(environment, p) for p in patterns)

        return hit(self.environments) and not hit(self.not_environments)

    def matches(self, value: Any) -> bool:
        if not isinstance(value, str) or isinstance(value, documents.JsonNumber):
            return False
        if self.prefix and value.startswith(self.prefix):
            return True
        return self._compiled is not None and self._compiled.search(value) is not None


#: The rules used when ``PORTAL_VALUE_RULES`` is not set: Stripe keys of the wrong mode.
DEFAULT_VALUE_RULES: tuple[dict[str, Any], ...] = (
    {
        "id": "stripe-live-key-outside-main",
        "message": "a Stripe live secret key (sk_live_/rk_live_) outside production",
        "regex": r"^(sk|rk)_live_",
        "not_environments": ["main"],
    },
    {
        "id": "stripe-test-key-in-main",
        "message": "a Stripe test secret key (sk_test_/rk_test_) in production",
        "regex": r"^(sk|rk)_test_",
        "environments": ["main"],
    },
)


def value_rules(config: Sequence[Mapping[str, Any]]) -> list[ValueRule]:
    """Build :class:`ValueRule` objects from settings. Raises ``ValueError`` naming the entry
    and the field when the configuration is malformed."""
    rules = []
    seen: set[str] = set()
    for i, entry in enumerate(config, 1):
        where = f"PORTAL_VALUE_RULES entry {i}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is not an object")
        unknown = set(entry) - {
            "id",
            "message",
            "severity",
            "prefix",
            "regex",
            "environments",
            "not_environments",
        }
        if unknown:
            raise ValueError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        rule_id = entry.get("id")
        if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", rule_id):
            raise ValueError(f"{where} needs an 'id' of lower-case letters, digits, '-', '_', '.'")
        if rule_id in seen:
            raise ValueError(f"{where}: the id {rule_id!r} is used twice")
        seen.add(rule_id)
        message = entry.get("message") or f"value rule {rule_id}"
        severity = entry.get("severity", "error")
        if severity not in SEVERITIES:
            raise ValueError(f"{where}: 'severity' must be 'error' or 'warning'")
        prefix, regex = entry.get("prefix", ""), entry.get("regex", "")
        if not isinstance(prefix, str) or not isinstance(regex, str) or not (prefix or regex):
            raise ValueError(f"{where} needs a 'prefix' or a 'regex' (strings)")
        try:
            compiled = re.compile(regex) if regex else None
        except re.error as exc:
            raise ValueError(
                f"{where}: 'regex' is not a valid regular expression ({exc})"
            ) from None
        envs = _patterns(entry.get("environments", ["*"]), f"{where}: 'environments'")
        not_envs = _patterns(entry.get("not_environments", []), f"{where}: 'not_environments'")
        rules.append(
            ValueRule(
                id=rule_id,
                message=str(message),
                severity=severity,
                prefix=prefix,
                regex=regex,
                environments=envs,
                not_environments=not_envs,
                _compiled=compiled,
            )
        )
    return rules


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class Policy:
    """What the checks expect, from settings: the unified suffix, required environments, value
    rules, and further environment names to recognise in legacy secret names."""

    suffix: str = "-secrets"
    required_environments: tuple[str, ...] = documents.STANDARD_ENVIRONMENTS
    value_rules: tuple[ValueRule, ...] = ()
    known_environments: tuple[str, ...] = COMMON_ENVIRONMENTS
    # shell patterns of the protected environments (PORTAL_PROTECTED_ENVIRONMENTS)
    protected_environments: tuple[str, ...] = ("main",)


# --------------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Fix:
    """Where to fix a finding: a URL name of the ``secrets_admin`` namespace with its arguments
    and query (resolved by the caller, this module knows no URLs)."""

    view: str
    args: tuple[str, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    label: str = "open"


@dataclass(frozen=True)
class Finding:
    """One way a secret breaks the standard. Names and counts only, never a value."""

    severity: Severity
    rule: str
    secret: str
    message: str
    environment: str = ""
    service: str = ""
    key: str = ""
    related: str = ""  # the unified secret a legacy secret belongs in
    fix: Fix | None = None

    @property
    def location(self) -> str:
        """``environment > service > key`` as far as it goes ("" for the whole secret)."""
        return " > ".join(p for p in (self.environment, self.service, self.key) if p)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fix")
        return data


class CellPosition(Protocol):
    """One cell by name (``documents.Cell`` and ``hygiene.Place`` fit)."""

    @property
    def environment(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def key(self) -> str: ...


def open_secret(name: str) -> Fix:
    """The usual fix: open secret ``name`` (its grid)."""
    return Fix("secret_detail", (name,), label=f"open {name}")


def cell_finding(
    severity: Severity, rule: str, secret: str, message: str, cell: CellPosition
) -> Finding:
    """A finding about one ``cell`` of ``secret``, fixed by opening the secret."""
    return Finding(
        severity,
        rule,
        secret,
        message,
        environment=cell.environment,
        service=cell.service,
        key=cell.key,
        fix=open_secret(secret),
    )


def counts(findings: Iterable[Finding]) -> dict[Severity, int]:
    """How many findings of each severity (both keys always present)."""
    severities = [f.severity for f in findings]
    return {s: severities.count(s) for s in SEVERITIES}


# --------------------------------------------------------------------------------------------
# Legacy names


@dataclass(frozen=True)
class LegacyMatch:
    """What a legacy secret's name says: the unified repo it belongs to ("" when none exists),
    and the service and environment it holds ("" when the name does not say)."""

    repo: str
    service: str
    environment: str


def _split_environment(rest: str, environments: Sequence[str]) -> tuple[str, str] | None:
    """``(service, environment)`` when ``rest`` is ``<env>``, ``<service>-<env>`` or
    ``<env>-<service>`` (environment matched without regard to case)."""
    low = rest.lower()
    for env in sorted(environments, key=len, reverse=True):
        e = env.lower()
        if low == e:
            return "", env
        if low.endswith("-" + e) and len(low) > len(e) + 1:
            return rest[: -len(e) - 1], env
        if low.startswith(e + "-") and len(low) > len(e) + 1:
            return rest[len(e) + 1 :], env
    return None


def legacy_match(
    name: str, repos: Iterable[str], environments: Sequence[str]
) -> LegacyMatch | None:
    """Read a legacy secret's name as ``<repo>-<service>-<env>``, ``<repo>-<env>`` or
    ``<repo>-<service>`` (the standard's "DON'T Create Multiple Secrets").

    ``repos`` are the repos that have a unified secret; the longest one that prefixes ``name``
    wins. Without one, a name ending (or starting) with a known environment still matches,
    with ``repo == ""``. Returns ``None`` for names that look like neither.
    """
    for repo in sorted(repos, key=len, reverse=True):
        if repo and name.startswith(repo + "-") and len(name) > len(repo) + 1:
            rest = name[len(repo) + 1 :]
            split = _split_environment(rest, environments)
            if split:
                return LegacyMatch(repo, split[0], split[1])
            return LegacyMatch(repo, rest, "")
    low = name.lower()
    for env in sorted(environments, key=len, reverse=True):
        if low.endswith("-" + env.lower()) and len(name) > len(env) + 1:
            return LegacyMatch("", "", env)
    return None


# --------------------------------------------------------------------------------------------
# The checks


def check(
    secrets: Sequence[ListedSecret],
    contents: Mapping[str, documents.Classified | Unreadable],
    *,
    policy: Policy,
) -> list[Finding]:
    """Every finding for the account, errors first, then by secret, rule and location.

    ``secrets`` is the whole listing (unified and not); ``contents`` maps unified secret names to
    what reading them gave. Unified secrets absent from ``contents`` are checked by name only.
    Secrets scheduled for deletion, and secrets managed by another AWS service, are skipped.
    """
    live = [s for s in secrets if not s.scheduled_for_deletion and not s.owning_service]
    unified = [s for s in live if s.name.endswith(policy.suffix)]
    repos = {s.name[: -len(policy.suffix)] for s in unified}
    environments = _known_environments(policy, contents.values())
    findings: list[Finding] = []
    for meta in unified:
        findings.extend(_check_unified_name(meta.name, repos, environments, policy))
        content = contents.get(meta.name)
        if content is None:
            if not meta.current_version:
                findings.append(_no_value(meta.name))
            continue
        findings.extend(_check_content(meta.name, content, policy))
    for meta in live:
        if not meta.name.endswith(policy.suffix):
            findings.extend(_check_other_name(meta.name, repos, environments, policy))
    return sorted(findings, key=_order)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings errors first, then by secret, rule and location (the order :func:`check` uses)."""
    return sorted(findings, key=_order)


def _order(f: Finding) -> tuple[int, str, str, str, str, str]:
    return (SEVERITIES.index(f.severity), f.secret, f.rule, f.environment, f.service, f.key)


def _known_environments(
    policy: Policy, contents: Iterable[documents.Classified | Unreadable]
) -> list[str]:
    names = dict.fromkeys([*policy.required_environments, *policy.known_environments])
    for content in contents:
        if isinstance(content, documents.Classified) and content.conforming:
            names.update(dict.fromkeys(content.document))
    return [n for n in names if n]


def _no_value(name: str) -> Finding:
    return Finding(
        "warning",
        "structure.no-value",
        name,
        "The secret has no value yet, so an application's GetSecretValue fails. Save a first "
        "version with every required environment.",
        fix=open_secret(name),
    )


def _check_unified_name(
    name: str, repos: set[str], environments: Sequence[str], policy: Policy
) -> Iterator[Finding]:
    repo = name[: -len(policy.suffix)]
    if not _REPO_NAME.match(repo):
        yield Finding(
            "warning",
            "naming.repo-name",
            name,
            f"The standard names a unified secret {{repo-name}}{policy.suffix}, and "
            f"{repo!r} is not a plain repo name (lower-case letters, digits, '-', '_', '.'). "
            "Use the repository's name.",
            fix=open_secret(name),
        )
    match = legacy_match(repo, repos - {repo}, environments)
    if match and match.environment:
        owner = match.repo or repo[: -len(match.environment) - 1] or repo
        target = f"{owner}{policy.suffix}"
        yield Finding(
            "warning",
            "naming.environment-in-name",
            name,
            f"The name carries the environment {match.environment!r}: the standard keeps ONE "
            f"secret per repo with every environment inside. Fold it into {target} as "
            f"environment {match.environment!r}.",
            environment=match.environment,
            related=target,
            fix=open_secret(target) if match.repo else open_secret(name),
        )


def _check_other_name(
    name: str, repos: set[str], environments: Sequence[str], policy: Policy
) -> Iterator[Finding]:
    match = legacy_match(name, repos, environments)
    if match is None:
        yield from _check_near_miss(name, policy)
        return
    where = ", ".join(
        part
        for part in (
            f"service {match.service!r}" if match.service else "",
            f"environment {match.environment!r}" if match.environment else "",
        )
        if part
    )
    if match.repo:
        target = f"{match.repo}{policy.suffix}"
        yield Finding(
            "warning",
            "legacy.fold-into-unified",
            name,
            f"Legacy secret of repo {match.repo!r} ({where}): the standard keeps ONE secret per "
            f"repo. Fold it into {target}, switch the app over, then schedule this one's "
            "deletion (the migration checklist's last step).",
            environment=match.environment,
            service=match.service,
            related=target,
            fix=open_secret(target),
        )
    else:
        stem = name[: -len(match.environment) - 1]
        yield Finding(
            "warning",
            "legacy.per-environment",
            name,
            f"Looks like a per-environment secret ({stem!r} for environment "
            f"{match.environment!r}) and its repo has no unified secret yet. Create "
            f"{{repo-name}}{policy.suffix} with every environment inside and fold this into it.",
            environment=match.environment,
            fix=Fix("secret_list", label="list unified secrets"),
        )


def _check_near_miss(name: str, policy: Policy) -> Iterator[Finding]:
    core = policy.suffix.strip("-_. ")
    if not core:
        return
    near = re.search(rf"[-_. ]?{re.escape(core.rstrip('s'))}s?$", name, re.IGNORECASE)
    if near is None or not name[: near.start()]:
        return
    repo = name[: near.start()]
    target = repo + policy.suffix
    yield Finding(
        "warning",
        "naming.near-miss",
        name,
        f"Named almost like a unified secret: the standard's pattern is "
        f"{{repo-name}}{policy.suffix}. Rename it to {target} (create that secret and move "
        "the value across; Secrets Manager cannot rename).",
        related=target,
        fix=Fix("secret_list", query=(("q", repo),), label="find it"),
    )


def _check_content(
    name: str, content: documents.Classified | Unreadable, policy: Policy
) -> Iterator[Finding]:
    if isinstance(content, Unreadable):
        yield Finding("error", "structure.unreadable", name, content.message, fix=open_secret(name))
        return
    if not content.conforming:
        shown = list(content.reasons[:5])
        more = len(content.reasons) - len(shown)
        yield Finding(
            "error",
            "structure.not-conforming",
            name,
            "Does not follow the standard's JSON structure (environment -> service -> key -> "
            f"value): {'; '.join(shown)}{f'; and {more} more' if more > 0 else ''}.",
            fix=open_secret(name),
        )
        return
    doc = content.document
    yield from _check_environments(name, doc, policy)
    yield from _check_case(name, doc)
    yield from _check_env_vars(name, doc)
    yield from _check_drift(name, doc)
    yield from _check_values(name, doc, policy)
    yield from _check_empty_protected(name, doc, policy)


def _check_environments(name: str, doc: Mapping[str, Any], policy: Policy) -> Iterator[Finding]:
    for env in policy.required_environments:
        if env not in doc:
            yield Finding(
                "error",
                "environments.required-missing",
                name,
                f"No {env!r} environment: an app built from branch {env!r} fails with "
                f'"No config found for environment: {env}" (the standard\'s troubleshooting). '
                f"Add {env!r} with the services the other environments have.",
                environment=env,
                fix=open_secret(name),
            )
    for env in doc:
        if not _BRANCH_NAME.match(env):
            yield Finding(
                "warning",
                "structure.environment-name",
                name,
                f"The environment {env!r} cannot be a branch name, and the app picks its "
                "environment from the branch (AWS_BRANCH), so nothing will ever read it. "
                "Rename it to the branch it serves.",
                environment=env,
                fix=open_secret(name),
            )


def _check_case(name: str, doc: Mapping[str, Any]) -> Iterator[Finding]:
    envs: dict[str, list[str]] = {}
    for env in doc:
        envs.setdefault(env.lower(), []).append(env)
    for variants in envs.values():
        if len(variants) > 1:
            yield Finding(
                "warning",
                "structure.case-conflict",
                name,
                f"Environments {_listed(variants)} differ only in case; branches are "
                "case-sensitive, so only one of them is used. Merge them.",
                environment=variants[0],
                fix=open_secret(name),
            )
    cells: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for row in documents.grid(doc).rows:
        cells.setdefault((row.service.lower(), row.key.lower()), []).append((row.service, row.key))
    for variants_ in cells.values():
        if len(variants_) > 1:
            shown = [f"{s}.{k}" for s, k in variants_]
            yield Finding(
                "warning",
                "structure.case-conflict",
                name,
                f"{_listed(shown)} differ only in case: they map to the same environment "
                f"variable {integration.env_var_name(*variants_[0])} and are easy to confuse. "
                "Keep one spelling.",
                service=variants_[0][0],
                key=variants_[0][1],
                fix=open_secret(name),
            )


def _check_env_vars(name: str, doc: Mapping[str, Any]) -> Iterator[Finding]:
    reported: set[str] = set()
    for var in integration.env_vars(doc):
        if not var.clashes or var.name in reported:
            continue
        reported.add(var.name)
        cells = [f"{var.service}.{var.key}", *var.clashes]
        if len({c.lower() for c in cells}) == 1:
            continue  # reported as structure.case-conflict
        yield Finding(
            "warning",
            "integration.env-var-clash",
            name,
            f"{_listed(cells)} all map to the environment variable {var.name}, so one "
            "overwrites the other in the app. Rename one of them.",
            service=var.service,
            key=var.key,
            fix=Fix("secret_integration", (name,), label="integration"),
        )


def _check_drift(name: str, doc: Mapping[str, Any]) -> Iterator[Finding]:
    grid = documents.grid(doc)
    for env in grid.environments:
        missing = [row for row in grid.rows if env not in row.values]
        if not missing:
            continue
        # Compare with the environment that has most of what this one lacks.
        others = [e for e in grid.environments if e != env]
        best = max(others, key=lambda e: sum(1 for row in missing if e in row.values))
        shown = [f"{row.service}.{row.key}" for row in missing[:DRIFT_LISTED]]
        more = len(missing) - len(shown)
        yield Finding(
            "warning",
            "drift.missing-cells",
            name,
            f"{env!r} lacks {len(missing)} key{'s' if len(missing) != 1 else ''} that other "
            f"environments have: {', '.join(shown)}{f' and {more} more' if more > 0 else ''}. "
            "Add them, or confirm they are not needed there.",
            environment=env,
            fix=Fix(
                "environment_diff",
                (name,),
                (("a", best), ("b", env)),
                label=f"compare {best} with {env}",
            ),
        )


def _check_values(name: str, doc: Mapping[str, Any], policy: Policy) -> Iterator[Finding]:
    if not policy.value_rules:
        return
    for cell in documents.cells(doc):
        for rule in policy.value_rules:
            if rule.applies_to(cell.environment) and rule.matches(cell.value):
                yield cell_finding(
                    rule.severity,
                    f"values.{rule.id}",
                    name,
                    f"This cell holds {rule.message} (rule {rule.id}; the value is not shown). "
                    "Replace it with the right value for this environment.",
                    cell,
                )


def _check_empty_protected(name: str, doc: Mapping[str, Any], policy: Policy) -> Iterator[Finding]:
    """Empty strings in protected environments: a "structure only" copy or a new secret's
    template leaves cells empty until someone gives them a value; in production an app would
    read "" for a credential."""
    for cell in documents.cells(doc):
        if cell.value == "" and any(
            fnmatch.fnmatchcase(cell.environment, p) for p in policy.protected_environments
        ):
            yield cell_finding(
                "warning",
                "empty.in-protected-environment",
                name,
                f"{cell.service}.{cell.key} is empty in the protected environment "
                f"{cell.environment!r}: it needs a value before an app reads it.",
                cell,
            )


def config_finding(message: str) -> Finding:
    """A finding for malformed ``PORTAL_VALUE_RULES`` (value rules are then not checked)."""
    return Finding(
        "error",
        "config.value-rules",
        "",
        f"{message}. Value rules were not checked; fix the setting and restart.",
    )


def _listed(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else quoted[0]
