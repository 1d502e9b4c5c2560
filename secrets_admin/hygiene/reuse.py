"""Reused credentials: cells of different environments or repositories holding one value (equal
fingerprints, ``IndexCell.shared``), the rules they break, and the grid's "same value as ..."
markers. Fingerprints and names only, never a value.

Rules: ``reuse.*`` in the package's docstring (the standard keeps a separate credential per
environment and per application).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .. import compliance, documents, hygiene


@dataclass(frozen=True)
class ReuseGroup:
    """Cells holding one value (equal fingerprints); ``problems`` are ``(severity, rule)``."""

    fingerprint: str
    places: tuple[hygiene.Place, ...]
    problems: tuple[tuple[compliance.Severity, str], ...]

    @property
    def severity(self) -> compliance.Severity:
        return "error" if any(s == "error" for s, _ in self.problems) else "warning"

    @property
    def short(self) -> str:
        return documents.short(self.fingerprint)

    @property
    def secrets(self) -> list[str]:
        return sorted({p.secret for p in self.places})


def rules_broken(places: Sequence[hygiene.Place]) -> list[tuple[compliance.Severity, str]]:
    """The reuse rules that ``places`` (cells holding one value) break, as ``(severity, rule)``,
    errors first: production shared with another environment of a secret, two non-production
    environments of a secret, two secrets."""
    out: list[tuple[compliance.Severity, str]] = []
    by_secret: dict[str, set[str]] = defaultdict(set)
    for p in places:
        by_secret[p.secret].add(p.environment)
    for envs in by_secret.values():
        prod = {e for e in envs if hygiene.is_production(e)}
        if prod and envs - prod:
            out.append(("error", "reuse.production-elsewhere"))
        elif len(envs - prod) > 1:
            out.append(("warning", "reuse.across-environments"))
    if len(by_secret) > 1:
        out.append(("warning", "reuse.across-repositories"))
    return sorted(set(out), key=lambda p: (compliance.SEVERITIES.index(p[0]), p[1]))


def reuse_groups(*, visible: hygiene.Visible) -> list[ReuseGroup]:
    """Every credential found in more than one environment or repository, errors first.
    Kept in the cache until the index changes (:func:`hygiene.memo`).

    One query: the credential cells whose fingerprint another holds (``IndexCell.shared``, kept
    by ``index.py``). Cells of one environment sharing a value (two keys, one value) are not
    reuse; with a scope, a group needs two visible places.
    """
    return hygiene.memo("reuse", visible, lambda: _reuse_groups(visible))


def _reuse_groups(visible: hygiene.Visible) -> list[ReuseGroup]:
    rows = (
        hygiene.cell_rows(visible)
        .filter(shared=True)
        .values_list("fingerprint", "secret__name", "environment", "service", "key")
    )
    grouped: dict[str, list[hygiene.Place]] = defaultdict(list)
    for fp, *where in rows:
        grouped[fp].append(hygiene.Place(*where))
    groups = []
    for fp, places in grouped.items():
        problems = rules_broken(places)
        if problems:
            ordered = sorted(places, key=lambda p: (p.secret, not p.production, p.cell))
            groups.append(ReuseGroup(fp, tuple(ordered), tuple(problems)))
    groups.sort(key=lambda g: (compliance.SEVERITIES.index(g.severity), g.secrets, g.places))
    return groups


def reuse_markers(
    *, name: str, version_id: str, visible: hygiene.Visible
) -> dict[tuple[str, str, str], list[str]]:
    """For the grid of ``name`` at ``version_id``: ``(environment, service, key)`` -> the other
    visible cells holding the same credential (``dev/stripe/secret_key`` in this secret first,
    then ``other-secrets: main/stripe/secret_key``). Empty when the index describes another
    version (it is then out of date for this grid). Two queries, the second only when needed."""
    own = list(
        hygiene.cell_rows(visible)
        .filter(secret__name=name, version_id=version_id, shared=True)
        .values_list("environment", "service", "key", "fingerprint")
    )
    if not own:
        return {}
    fps = {fp for *_, fp in own}
    others = (
        hygiene.cell_rows(visible)
        .filter(shared=True, fingerprint__in=sorted(fps))
        .values_list("fingerprint", "secret__name", "environment", "service", "key")
        .order_by("secret__name", "environment", "service", "key")
    )
    holders: dict[str, list[hygiene.Place]] = defaultdict(list)
    for fp, *where in others:
        holders[fp].append(hygiene.Place(*where))
    out = {}
    for env, service, key, fp in own:
        # Another key of the same environment holding the value is not reuse (and not itself).
        same = [p for p in holders[fp] if not (p.secret == name and p.environment == env)]
        same.sort(key=lambda p: (p.secret != name, p.secret, not p.production, p.cell))
        if same:
            out[(env, service, key)] = [p.named_from(name) for p in same]
    return out


@dataclass(frozen=True)
class ReuseNote:
    """One cell of a grid that holds the same credential as other cells: ``cell``
    (``main/stripe/secret_key``), ``marker`` ("same value as dev/stripe/secret_key and 2
    more") and ``places``, every other place (for the marker's title). Names only."""

    cell: str
    marker: str
    places: str


def reuse_notes(*, name: str, version_id: str, visible: hygiene.Visible) -> list[ReuseNote]:
    """The grid page's "same value as ..." markers for ``name`` at ``version_id`` (from
    :func:`reuse_markers`), in cell order. Kept apart from the grid's rows, which are cached
    per version while reuse changes with the rest of the account and with who is looking. Kept
    until the index changes (:func:`~secrets_admin.hygiene.memo`)."""
    return hygiene.memo(
        "reuse_notes",
        visible,
        lambda: _reuse_notes(name=name, version_id=version_id, visible=visible),
        name,
        version_id,
    )


def _reuse_notes(*, name: str, version_id: str, visible: hygiene.Visible) -> list[ReuseNote]:
    markers = reuse_markers(name=name, version_id=version_id, visible=visible)
    notes = []
    for (env, service, key), places in sorted(markers.items()):
        if not places:
            continue
        more = f" and {len(places) - 1} more" if len(places) > 1 else ""
        notes.append(
            ReuseNote(
                cell=f"{env}/{service}/{key}",
                marker=f"same value as {places[0]}{more}",
                places=", ".join(places),
            )
        )
    return notes
