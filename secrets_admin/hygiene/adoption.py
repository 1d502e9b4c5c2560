"""Each repository's adoption of the standard (its migration checklist, as far as the index can
tell), and every hygiene report as compliance findings (``lint.py`` adds them to the checks of
each secret). Reads the index only; names, counts and fingerprints, never a value.

The rules and their sources are listed in the package's docstring (``hygiene/__init__.py``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from .. import compliance, hygiene
from . import reuse, staleness

Status = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True)
class AdoptionItem:
    id: str
    status: Status
    detail: str = ""


#: Item id -> what the portal checks (the standard's migration checklist, as far as it can see).
ADOPTION_ITEMS: dict[str, str] = {
    "unified": "A unified secret <repo>-secrets exists",
    "environments": "It has every required environment (PORTAL_REQUIRED_ENVIRONMENTS)",
    "legacy": "No legacy per-environment secrets left (or all scheduled for deletion)",
    "empty": "No empty production credential",
    "reused": "No production credential reused elsewhere",
    "stale": "No stale production credential",
    "policy": "The generated IAM policy (<name>-*) matches this secret only",
}


@dataclass(frozen=True)
class AdoptionRow:
    repo: str
    secret: str  # "" when the repository has legacy secrets only
    items: tuple[AdoptionItem, ...]

    @property
    def passed(self) -> int:
        return sum(1 for i in self.items if i.status == "ok")

    @property
    def status(self) -> dict[str, AdoptionItem]:
        return {i.id: i for i in self.items}

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "secret": self.secret,
            "passed": self.passed,
            "of": len(self.items),
            "items": {i.id: {"status": i.status, "detail": i.detail} for i in self.items},
        }


def _listed(names: Iterable[str], most: int = 3) -> str:
    names = sorted(names)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _count_item(item: str, n: int, what: str) -> AdoptionItem:
    return AdoptionItem(item, "ok" if not n else "fail", f"{n} {what}" if n else "")


def adoption(*, visible: hygiene.Visible, now: datetime | None = None) -> list[AdoptionRow]:
    """One row per repository (a unified secret, or legacy secrets without one), by repo name.

    Reads the index only: the secrets' rows, empty and stale production cells, and
    :func:`reuse.reuse_groups`. Without ``now`` the rows are kept in the cache for up to
    ``CACHE_SECONDS`` or until the index changes.
    """
    if now is None:
        return hygiene.memo("adoption", visible, lambda: _adoption(visible, timezone.now()))
    return _adoption(visible, now)


def _adoption(visible: hygiene.Visible, now: datetime) -> list[AdoptionRow]:
    suffix = settings.PORTAL_SECRET_SUFFIX
    secrets = list(
        hygiene.secret_rows(visible).values_list(
            "id", "name", "unified", "kind", "environments", "deleted_date"
        )
    )
    names = {pk: n for pk, n, *_ in secrets}
    all_names = sorted(names.values())
    unified = {n: (kind, envs) for _, n, u, kind, envs, d in secrets if u and d is None}
    repos = {hygiene.repo_of(n) for n in unified}
    environments = list(
        dict.fromkeys([*settings.PORTAL_REQUIRED_ENVIRONMENTS, *compliance.COMMON_ENVIRONMENTS])
    )
    legacy: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for _, n, u, _, _, deleted in secrets:
        if u:
            continue
        match = compliance.legacy_match(n, repos, environments)
        if match is None:
            continue
        owner = match.repo or n[: -len(match.environment) - 1]
        legacy[owner].append((n, deleted is not None))
    empty: dict[str, int] = defaultdict(int)
    for pk, env in (
        hygiene.cell_rows(visible).filter(empty=True).values_list("secret_id", "environment")
    ):
        if hygiene.is_production(env):
            empty[names[pk]] += 1
    production = {
        e: t for e, t in staleness.stale_before(visible, now).items() if hygiene.is_production(e)
    }
    stale: dict[str, int] = {
        names[pk]: n
        for pk, n in hygiene.cell_rows(visible)
        .filter(staleness.stale_filter(production), credential=True)
        .values_list("secret_id")
        .annotate(n=Count("id"))
        .order_by()
    }
    reused: dict[str, set[str]] = defaultdict(set)
    for group in reuse.reuse_groups(visible=visible):
        for p in group.places:
            if p.production:
                reused[p.secret].add(p.cell)
    rows: list[AdoptionRow] = []
    required = tuple(settings.PORTAL_REQUIRED_ENVIRONMENTS)
    for repo in sorted(repos | set(legacy)):
        name = repo + suffix
        olds = legacy.get(repo, [])
        live = [n for n, scheduled in olds if not scheduled]
        legacy_item = AdoptionItem(
            "legacy",
            "fail" if live else "ok",
            f"left: {_listed(live)}"
            if live
            else (f"{len(olds)} scheduled for deletion" if olds else ""),
        )
        if name not in unified:
            rows.append(
                AdoptionRow(
                    repo,
                    "",
                    (
                        AdoptionItem("unified", "fail", f"no {name}"),
                        *(AdoptionItem(i, "unknown") for i in ("environments",)),
                        legacy_item,
                        *(
                            AdoptionItem(i, "unknown")
                            for i in ("empty", "reused", "stale", "policy")
                        ),
                    ),
                )
            )
            continue
        kind, envs = unified[name]
        if kind != "conforming":
            env_item = AdoptionItem(
                "environments",
                "unknown" if not kind else "fail",
                hygiene.KIND_LABELS.get(kind, kind),
            )
        else:
            missing = [e for e in required if e not in envs]
            env_item = AdoptionItem(
                "environments",
                "fail" if missing else "ok",
                f"missing {_listed(missing)}" if missing else "",
            )
        overlap = _policy_overlap(name, all_names)
        rows.append(
            AdoptionRow(
                repo,
                name,
                (
                    AdoptionItem("unified", "ok"),
                    env_item,
                    legacy_item,
                    _count_item("empty", empty.get(name, 0), "empty"),
                    AdoptionItem(
                        "reused",
                        "fail" if reused.get(name) else "ok",
                        _listed(reused.get(name, ())),
                    ),
                    _count_item("stale", stale.get(name, 0), "stale"),
                    AdoptionItem(
                        "policy",
                        "fail" if overlap else "ok",
                        f"{name}-* also matches {_listed(overlap)}" if overlap else "",
                    ),
                ),
            )
        )
    return rows


def _policy_overlap(name: str, sorted_names: Sequence[str]) -> list[str]:
    """Other secrets the integration page's ``<name>-*`` resource would also grant (AWS appends
    ``-`` and six random characters to an ARN, so the standard's policy ends in ``-*``); a name
    holding an IAM wildcard (``*``/``?``) cannot be granted alone at all."""
    if "*" in name or "?" in name:
        return [name]
    prefix = name + "-"
    out = []
    i = bisect.bisect_left(sorted_names, prefix)
    while i < len(sorted_names) and sorted_names[i].startswith(prefix):
        out.append(sorted_names[i])
        i += 1
    return out


ADOPTION_SORTS = ("repo", "passed", *ADOPTION_ITEMS)
_RANK = {"fail": 0, "unknown": 1, "ok": 2}


def sort_adoption(rows: list[AdoptionRow], sort: str) -> list[AdoptionRow]:
    """Rows sorted by ``sort``: ``repo``, ``passed`` or an item id; a leading ``-`` reverses."""
    reverse = sort.startswith("-")
    column = sort.lstrip("-")
    if column == "passed":
        return sorted(rows, key=lambda r: (r.passed, r.repo), reverse=reverse)
    if column in ADOPTION_ITEMS:
        return sorted(rows, key=lambda r: (_RANK[r.status[column].status], r.repo), reverse=reverse)
    return sorted(rows, key=lambda r: r.repo, reverse=reverse)


# --------------------------------------------------------------------------------------------
# Compliance findings


def findings(
    *, visible: hygiene.Visible = None, now: datetime | None = None
) -> list[compliance.Finding]:
    """Reuse, staleness and empty production credentials as compliance findings, from the index
    (no AWS call). Each names cells, never a value."""
    now = now or timezone.now()
    out: list[compliance.Finding] = []
    for group in reuse.reuse_groups(visible=visible):
        for secret in group.secrets:
            mine = [p for p in group.places if p.secret == secret]
            first = next((p for p in mine if p.production), mine[0])
            others = [p.named_from(secret) for p in group.places if p != first]
            rules = reuse.rules_broken(mine)  # this secret's own environments
            if len(group.secrets) > 1:
                rules.append(("warning", "reuse.across-repositories"))
            for severity, rule in rules:
                out.append(
                    compliance.cell_finding(
                        severity,
                        rule,
                        secret,
                        f"{first.cell} holds the same value as {_listed(others)} (fingerprint "
                        f"{group.short}; the value is not shown). The standard keeps a separate "
                        "credential per environment and per application: issue a new one.",
                        first,
                    )
                )
    stale = (
        staleness.stale_cells(visible, now)
        .values_list("secret__name", "environment")
        .annotate(n=Count("id"))
        .order_by("secret__name", "environment")
    )
    for secret, env, n in stale:
        out.append(
            compliance.Finding(
                "warning",
                "stale.credential",
                secret,
                f"{n} credential{'s' if n != 1 else ''} in {env!r} unchanged for more than "
                f"{staleness.days_for(env)} days (PORTAL_STALE_DAYS). Rotate them.",
                environment=env,
                fix=compliance.Fix(
                    "credential_staleness", query=(("environment", env),), label="due for rotation"
                ),
            )
        )
    empties = (
        hygiene.cell_rows(visible)
        .filter(empty=True)
        .values_list("secret__name", "environment", "service", "key")
        .order_by("secret__name", "environment", "service", "key")
    )
    for secret, env, service, key in empties:
        if hygiene.is_production(env):
            out.append(
                compliance.cell_finding(
                    "error",
                    "empty.production-credential",
                    secret,
                    "This production value is empty: the app reads an empty string (or null) "
                    "at runtime. Set the credential.",
                    hygiene.Place(secret, env, service, key),
                )
            )
    return out
