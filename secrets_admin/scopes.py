"""Access rules: which identity-provider groups hold which role on which secrets and environments.

README "Access rules". A **rule** gives a role to groups on a **scope**: the secrets chosen
by name patterns and/or AWS tags, optionally limited to some environments. A person's right on a
cell is the highest role any of their rules gives for that secret and environment. Today's
global mapping ``PORTAL_ROLE_GROUPS`` is a rule on every secret and environment.

The rules come from ``PORTAL_ACCESS_FILE`` (TOML) or ``PORTAL_ACCESS_RULES`` (the same shape as a
JSON object), read once at start (``apps.py``)::

    groups = ["payments-engineers", "payments-leads"]   # the IdP groups rules may name
    tag_keys = ["team"]                                 # the AWS tag keys rules may test
    environments = ["sandbox", "dev", "uat", "main"]    # optional; this is the default

    [reveal]                    # optional: per protected environment (pattern), default "reason"
    "main" = "approver"         # "reason" | "approver" | "deny"

    [[rule]]
    groups = ["payments-engineers"]
    role = "engineer"                                    # auditor | engineer | approver | admin
    secrets = { tags = { team = "payments" } }           # and/or names = ["payments-*-secrets"]
    environments = ["sandbox", "dev"]                    # optional; every environment if absent

What is "known" (a rule naming anything else is a start-up error with the rule's line, never a
silently empty scope): a group is known when the file's top-level ``groups`` declares it or
``PORTAL_ROLE_GROUPS`` maps it; a tag key when ``tag_keys`` declares it; an environment pattern
when it matches at least one of ``environments``; a role when it is one of the four roles. The
declarations are the administrator's second statement of intent: a typo in a rule no longer
matches the declaration, so it cannot quietly give nobody (or everybody) access.

Matching: ``names`` are shell-style patterns (``fnmatch``, case-sensitive like AWS names); a tag
value is a string or a list of accepted strings, compared exactly (AWS tag values are
case-sensitive); every tag listed must match; with both ``names`` and ``tags`` a secret must match
both. ``secrets`` is required: a rule on every secret says ``names = ["*"]`` in so many words.

This module is pure (no database, no AWS): ``permissions`` applies it to users and secrets.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class Role(enum.IntEnum):
    """Portal roles, ordered: each includes the rights of the ones before it."""

    NONE = 0
    AUDITOR = 1
    ENGINEER = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def group_name(self) -> str:
        return f"portal:{self.label}"


ASSIGNABLE_ROLES = (Role.AUDITOR, Role.ENGINEER, Role.APPROVER, Role.ADMIN)


class RevealPolicy(enum.StrEnum):
    """What revealing a value of a protected environment asks for."""

    REASON = "reason"  # any engineer or higher, stating a reason (recorded in the audit chain)
    APPROVER = "approver"  # approvers (and admins) only, stating a reason
    DENY = "deny"  # nobody reveals here; values are compared by fingerprint only


#: The standard's environments ("sandbox, dev, main, uat, etc."): the default ``environments``.
DEFAULT_ENVIRONMENTS = ("sandbox", "dev", "uat", "main")
#: Django's ``Group.name`` holds 150 characters; a stored IdP group is ``idp:<name>``.
IDP_GROUP_PREFIX = "idp:"
MAX_GROUP_LENGTH = 150 - len(IDP_GROUP_PREFIX)
#: Characters of a secret name (CreateSecret ``Name``) plus the pattern characters ``*?[]!``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9/_+=.@*?\[\]!-]{1,512}$")
#: AWS tag keys: 1-128 characters (TagResource); ``aws:`` is reserved but readable.
MAX_TAG_KEY_LENGTH = 128
TOP_LEVEL_KEYS = frozenset({"groups", "tag_keys", "environments", "reveal", "rule"})
RULE_KEYS = frozenset({"groups", "role", "secrets", "environments", "description"})
SECRETS_KEYS = frozenset({"names", "tags"})
GLOBAL_SOURCE = "PORTAL_ROLE_GROUPS"


class AccessRulesError(ImproperlyConfigured):
    """The access rules cannot be used; the message names the source, the line and the fix."""


@dataclass(frozen=True)
class Rule:
    """One rule: ``role`` for ``groups`` on the secrets matching ``names`` and ``tags``, in the
    environments matching ``environments`` (empty: every environment).

    ``source`` says where the rule was written, for people ("rule 2 (line 7)",
    "PORTAL_ROLE_GROUPS"). ``tags`` is ``((key, accepted values), ...)``.
    """

    source: str
    groups: frozenset[str]
    role: Role
    names: tuple[str, ...] = ()
    tags: tuple[tuple[str, frozenset[str]], ...] = ()
    environments: tuple[str, ...] = ()
    description: str = ""
    global_mapping: bool = False  # made from PORTAL_ROLE_GROUPS (held as a ``portal:`` role)

    @property
    def every_secret(self) -> bool:
        return not self.tags and any(p == "*" for p in self.names)

    @property
    def every_environment(self) -> bool:
        return not self.environments

    def matches_secret(self, name: str, tags: Mapping[str, str]) -> bool:
        """Whether the secret ``name`` with AWS ``tags`` is in this rule's scope."""
        if self.names and not any(fnmatch.fnmatchcase(name, p) for p in self.names):
            return False
        return all(tags.get(key) in accepted for key, accepted in self.tags)

    def covers_environment(self, environment: str) -> bool:
        return not self.environments or any(
            fnmatch.fnmatchcase(environment, p) for p in self.environments
        )


#: Tags of a secret, or a function giving them (called only when a rule tests tags).
Tags = Mapping[str, str] | Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class Scope:
    """The rules that apply to one person (their groups'), and what they give."""

    rules: tuple[Rule, ...]

    @property
    def highest(self) -> Role:
        """The highest role on anything: what "may this person do X at all" is decided by."""
        return max((r.role for r in self.rules), default=Role.NONE)

    @property
    def uses_tags(self) -> bool:
        return any(r.tags for r in self.rules)

    def role(
        self, name: str | None = None, tags: Tags | None = None, environment: str | None = None
    ) -> Role:
        """The highest role any rule gives on secret ``name`` (``None``: on any secret) in
        ``environment`` (``None``: in some environment of it).

        ``tags`` are the secret's AWS tags, or a function returning them: it is called only when
        a rule that could raise the answer tests tags (so a global role costs no lookup).
        """
        best = Role.NONE
        resolved: Mapping[str, str] | None = None
        # Highest roles first: the first rule that matches decides.
        for rule in sorted(self.rules, key=lambda r: r.role, reverse=True):
            if rule.role <= best:
                break
            if environment is not None and not rule.covers_environment(environment):
                continue
            if name is not None:
                if rule.tags and resolved is None:
                    resolved = (tags() if callable(tags) else tags) or {}
                if not rule.matches_secret(name, resolved or {}):
                    continue
            best = rule.role
        return best

    def unrestricted(self, role: Role) -> bool:
        """Whether one rule gives at least ``role`` on every secret and environment."""
        return any(r.role >= role and r.every_secret and r.every_environment for r in self.rules)


@dataclass(frozen=True)
class AccessRules:
    """Every rule of the deployment plus what they may name (see the module docstring)."""

    rules: tuple[Rule, ...] = ()
    groups: frozenset[str] = frozenset()
    tag_keys: frozenset[str] = frozenset()
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    reveal: tuple[tuple[str, RevealPolicy], ...] = ()

    @property
    def rule_groups(self) -> frozenset[str]:
        """The IdP groups some scoped rule names: the only ones worth remembering for a person
        (the global mapping's groups are remembered as ``portal:<role>`` roles instead)."""
        return frozenset(g for r in self.rules if not r.global_mapping for g in r.groups)

    def scope_for(self, groups: Iterable[str], *, global_role: Role = Role.NONE) -> Scope:
        """The scope of a person in ``groups`` (IdP group names), who also holds ``global_role``
        on every secret (a portal role given directly: demo users, the global mapping)."""
        mine = set(groups)
        rules = [r for r in self.rules if r.groups & mine]
        if global_role is not Role.NONE:
            rules.append(
                Rule(source="global role", groups=frozenset(), role=global_role, names=("*",))
            )
        return Scope(tuple(rules))

    def reveal_policy(self, environment: str) -> RevealPolicy:
        """The policy for revealing in ``environment`` when it is protected: the first matching
        ``[reveal]`` pattern, else ``reason``."""
        for pattern, policy in self.reveal:
            if fnmatch.fnmatchcase(environment, pattern):
                return policy
        return RevealPolicy.REASON

    def summary(
        self,
        name: str,
        tags: Tags,
        environments: Iterable[str],
        *,
        is_protected: Callable[[str], bool],
    ) -> list[tuple[str, str]]:
        """Who may do what on one secret: ``[(group, "edit sandbox, dev; propose main"), ...]``.

        Per group, per environment of the secret, the highest role its rules give, said as the
        verb it allows there: ``view`` (auditor), ``edit`` (engineer or higher, unprotected),
        ``propose`` (engineer, protected), ``approve`` (approver or admin, protected). Groups
        with no right on the secret are left out; order: group name.
        """
        envs = list(environments)
        out: list[tuple[str, str]] = []
        for group in sorted({g for r in self.rules for g in r.groups}):
            scope = self.scope_for([group])
            by_verb: dict[str, list[str]] = {}
            for env in envs:
                verb = _verb(scope.role(name, tags, env), protected=is_protected(env))
                if verb:
                    by_verb.setdefault(verb, []).append(env)
            if not envs and (role := scope.role(name, tags)) is not Role.NONE:
                by_verb[role.label] = []
            if by_verb:
                parts = [f"{v} {', '.join(e)}".strip() for v, e in by_verb.items()]
                out.append((group, "; ".join(parts)))
        return out


def _verb(role: Role, *, protected: bool) -> str:
    if role is Role.NONE:
        return ""
    if role is Role.AUDITOR:
        return "view"
    if not protected:
        return "edit"
    return "propose" if role is Role.ENGINEER else "approve"


# --------------------------------------------------------------------------------------------
# Reading and validating


def parse_toml(
    text: str, *, origin: str, role_groups: Mapping[str, str] | None = None
) -> AccessRules:
    """Rules from TOML ``text`` (``origin`` names it in errors, e.g. the file's path).

    Raises :class:`AccessRulesError` naming the line: tomllib's own line for a syntax error, the
    rule's ``[[rule]]`` header line (or the offending key's line inside it) otherwise.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccessRulesError(f"{origin}: not valid TOML: {exc}") from None
    return _build(data, _Locator(origin, text), role_groups or {})


def parse_json(
    text: str, *, origin: str, role_groups: Mapping[str, str] | None = None
) -> AccessRules:
    """Rules from a JSON object ``text`` of the same shape as the TOML file (``"rule"``: a list
    of rule objects). Raises :class:`AccessRulesError` naming the rule by its number."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AccessRulesError(f"{origin}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AccessRulesError(f'{origin}: must be a JSON object with a "rule" list.')
    return _build(data, _Locator(origin, None), role_groups or {})


def from_role_groups(role_groups: Mapping[str, str]) -> AccessRules:
    """The global mapping alone (no access file): one rule on every secret per group."""
    return _build({}, _Locator(GLOBAL_SOURCE, None), role_groups)


def load(*, file: str, rules_json: str, role_groups: Mapping[str, str]) -> AccessRules:
    """The deployment's rules: from ``file`` (``PORTAL_ACCESS_FILE``), else ``rules_json``
    (``PORTAL_ACCESS_RULES``), else the global mapping alone. Raises :class:`AccessRulesError`
    when both are set, the file cannot be read, or the rules are invalid."""
    if file and rules_json:
        raise AccessRulesError(
            "Set PORTAL_ACCESS_FILE or PORTAL_ACCESS_RULES, not both: the portal would not know "
            "which rules are meant."
        )
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise AccessRulesError(
                f"PORTAL_ACCESS_FILE {file}: cannot be read ({exc.strerror or exc})."
            ) from None
        return parse_toml(text, origin=f"PORTAL_ACCESS_FILE {file}", role_groups=role_groups)
    if rules_json:
        return parse_json(rules_json, origin="PORTAL_ACCESS_RULES", role_groups=role_groups)
    return from_role_groups(role_groups)


class _Locator:
    """Names a place in the rules for an error: a line of the TOML text when there is one."""

    def __init__(self, origin: str, text: str | None) -> None:
        self.origin = origin
        self.lines = text.splitlines() if text is not None else None

    def _headers(self) -> list[int]:
        """1-based line numbers of the ``[[rule]]`` headers, in order (tomllib keeps no lines)."""
        pattern = re.compile(r"^\s*\[\[\s*rule\s*\]\]\s*(#.*)?$")
        return [i + 1 for i, line in enumerate(self.lines or []) if pattern.match(line)]

    def rule_line(self, index: int, key: str | None = None) -> int | None:
        headers = self._headers()
        if self.lines is None or index >= len(headers):
            return None
        start = headers[index]
        end = headers[index + 1] - 1 if index + 1 < len(headers) else len(self.lines)
        if key is not None:
            # A later table header ends the rule's own keys (e.g. [rule.secrets] is still its).
            key_re = re.compile(
                rf"^\s*(\"?){re.escape(key)}\1\s*=|^\s*\[\s*rule\.{re.escape(key)}\s*\]"
            )
            for number in range(start + 1, end + 1):
                if key_re.match(self.lines[number - 1]):
                    return number
        return start

    def top_line(self, key: str) -> int | None:
        if self.lines is None:
            return None
        key_re = re.compile(rf"^\s*(\"?){re.escape(key)}\1\s*=|^\s*\[\s*{re.escape(key)}\s*\]")
        for number, line in enumerate(self.lines, start=1):
            if re.match(r"^\s*\[", line) and not key_re.match(line):
                return None  # top-level keys come before the first table
            if key_re.match(line):
                return number
        return None

    def fail(
        self, message: str, *, line: int | None = None, rule: int | None = None
    ) -> AccessRulesError:
        where = self.origin
        if line is not None:
            where += f" line {line}"
        if rule is not None:
            where += f": rule {rule + 1}"
        return AccessRulesError(f"{where}: {message}")


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


def _build(data: Mapping[str, Any], where: _Locator, role_groups: Mapping[str, str]) -> AccessRules:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise where.fail(
                f"unknown setting {key!r}; the file may hold {', '.join(sorted(TOP_LEVEL_KEYS))}.",
                line=where.top_line(key),
            )
    declared = _string_list(data.get("groups", []))
    if declared is None:
        raise where.fail("groups must be a list of group names.", line=where.top_line("groups"))
    for group in declared:
        if len(group) > MAX_GROUP_LENGTH:
            raise where.fail(
                f"group {group[:40]!r}... is longer than {MAX_GROUP_LENGTH} characters.",
                line=where.top_line("groups"),
            )
    tag_keys = _string_list(data.get("tag_keys", []))
    if tag_keys is None or any(len(k) > MAX_TAG_KEY_LENGTH for k in tag_keys):
        raise where.fail(
            "tag_keys must be a list of AWS tag keys (1-128 characters).",
            line=where.top_line("tag_keys"),
        )
    environments = _string_list(data.get("environments", list(DEFAULT_ENVIRONMENTS)))
    if not environments:
        raise where.fail(
            "environments must be a non-empty list of environment names.",
            line=where.top_line("environments"),
        )
    known_groups = frozenset(declared) | frozenset(role_groups)
    context = _Known(known_groups, frozenset(tag_keys), tuple(environments))
    reveal = _reveal(data.get("reveal", {}), where, context)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise where.fail(
            "rule must be a list of rules ([[rule]] tables).", line=where.top_line("rule")
        )
    rules = [_rule(raw, i, where, context) for i, raw in enumerate(raw_rules)]
    for group, label in role_groups.items():
        rules.append(
            Rule(
                source=f"{GLOBAL_SOURCE} {group}",
                groups=frozenset({group}),
                role=Role[label.upper()],
                names=("*",),
                global_mapping=True,
            )
        )
    return AccessRules(
        rules=tuple(rules),
        groups=known_groups,
        tag_keys=context.tag_keys,
        environments=context.environments,
        reveal=reveal,
    )


@dataclass(frozen=True)
class _Known:
    groups: frozenset[str]
    tag_keys: frozenset[str]
    environments: tuple[str, ...]

    def environment_pattern_known(self, pattern: str) -> bool:
        return any(fnmatch.fnmatchcase(env, pattern) for env in self.environments)


def _reveal(value: Any, where: _Locator, known: _Known) -> tuple[tuple[str, RevealPolicy], ...]:
    line = where.top_line("reveal")
    if not isinstance(value, dict):
        raise where.fail("reveal must be a table: environment pattern = policy.", line=line)
    out = []
    choices = ", ".join(p.value for p in RevealPolicy)
    for pattern, policy in value.items():
        if policy not in {p.value for p in RevealPolicy}:
            raise where.fail(
                f"reveal policy {policy!r} for {pattern!r} is not one of {choices}.", line=line
            )
        if not known.environment_pattern_known(pattern):
            raise where.fail(
                f"reveal names environment pattern {pattern!r}, which matches none of the "
                f"known environments ({', '.join(known.environments)}); add it to environments.",
                line=line,
            )
        out.append((pattern, RevealPolicy(policy)))
    return tuple(out)


def _rule(raw: Any, index: int, where: _Locator, known: _Known) -> Rule:
    def fail(message: str, key: str | None = None) -> AccessRulesError:
        return where.fail(message, line=where.rule_line(index, key), rule=index)

    if not isinstance(raw, dict):
        raise fail("a rule must be a table ([[rule]]).")
    for key in raw:
        if key not in RULE_KEYS:
            raise fail(f"unknown key {key!r}; a rule may hold {', '.join(sorted(RULE_KEYS))}.", key)
    groups = _string_list(raw.get("groups"))
    if not groups:
        raise fail("groups must be a non-empty list of identity-provider groups.", "groups")
    for group in groups:
        if group not in known.groups:
            raise fail(
                f"group {group!r} is unknown: declare it in the top-level groups list "
                "(or map it in PORTAL_ROLE_GROUPS).",
                "groups",
            )
    role_label = raw.get("role")
    labels = [r.label for r in ASSIGNABLE_ROLES]
    if role_label not in labels:
        raise fail(f"role {role_label!r} is unknown; use one of {', '.join(labels)}.", "role")
    secrets = raw.get("secrets")
    if not isinstance(secrets, dict):
        raise fail(
            "secrets is required: { names = [...] } and/or { tags = {...} }; every secret is "
            'names = ["*"].',
            "secrets",
        )
    for key in secrets:
        if key not in SECRETS_KEYS:
            raise fail(f"secrets may hold names and tags, not {key!r}.", "secrets")
    names = _string_list(secrets.get("names", []))
    if names is None or any(not NAME_PATTERN.match(n) for n in names):
        raise fail(
            "secrets.names must be a list of secret name patterns (letters, digits, /_+=.@- "
            "and the pattern characters *?[]!).",
            "secrets",
        )
    tags = secrets.get("tags", {})
    if not isinstance(tags, dict):
        raise fail("secrets.tags must be a table: tag key = value or list of values.", "secrets")
    tag_pairs: list[tuple[str, frozenset[str]]] = []
    for key, accepted in tags.items():
        if key not in known.tag_keys:
            raise fail(
                f"tag key {key!r} is unknown: declare it in the top-level tag_keys list.",
                "secrets",
            )
        values = [accepted] if isinstance(accepted, str) else _string_list(accepted)
        if not values:
            raise fail(f"tag {key!r} must be a value or a non-empty list of values.", "secrets")
        tag_pairs.append((key, frozenset(values)))
    if not names and not tag_pairs:
        raise fail(
            'secrets chooses nothing: give names and/or tags (every secret: names = ["*"]).',
            "secrets",
        )
    environments: list[str] = []
    if "environments" in raw:
        environments = _string_list(raw["environments"]) or []
        if not environments:
            raise fail(
                "environments must be a non-empty list of environment patterns.", "environments"
            )
        for pattern in environments:
            if not known.environment_pattern_known(pattern):
                raise fail(
                    f"environment pattern {pattern!r} matches none of the known environments "
                    f"({', '.join(known.environments)}); fix it or add the environment to the "
                    "top-level environments list.",
                    "environments",
                )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be text.", "description")
    line = where.rule_line(index)
    return Rule(
        source=f"rule {index + 1}" + (f" (line {line})" if line else ""),
        groups=frozenset(groups),
        role=Role[str(role_label).upper()],
        names=tuple(names),
        tags=tuple(tag_pairs),
        environments=tuple(environments),
        description=description,
    )
