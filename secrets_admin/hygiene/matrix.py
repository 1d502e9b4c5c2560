"""The service matrix: repositories x services, from the index's per-secret layout (which
environments hold which services, how many keys), and its CSV. Names only."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from .. import documents, hygiene


@dataclass(frozen=True)
class MatrixCell:
    """One repository x service: the environments (in the filter) that have the service and how
    many keys it holds across them."""

    service: str
    environments: tuple[str, ...]
    keys: int

    @property
    def present(self) -> bool:
        return bool(self.environments)


@dataclass(frozen=True)
class MatrixRow:
    """One repository: its secret, its ``layout`` (``{environment: {service: keys}}``), the
    environments the filter looks at and the service columns; cells are built when shown."""

    repo: str
    secret: str
    layout: dict[str, dict[str, int]]
    environments: tuple[str, ...]
    columns: tuple[str, ...]
    status: str = ""  # why the secret has no cells: "no value yet", "not JSON"... ("" when read)

    def has(self, service: str) -> bool:
        return any(service in self.layout.get(e, {}) for e in self.environments)

    @property
    def cells(self) -> list[MatrixCell]:
        return [
            MatrixCell(
                s,
                tuple(e for e in self.environments if s in self.layout.get(e, {})),
                sum(self.layout.get(e, {}).get(s, 0) for e in self.environments),
            )
            for s in self.columns
        ]


@dataclass
class Matrix:
    """The service matrix: every known environment and service (for the filters), the service
    columns shown, and one row per repository."""

    environments: list[str]
    services: list[str]
    columns: list[str]
    rows: list[MatrixRow] = field(default_factory=list)


PRESENCE = ("", "present", "missing")


def service_matrix(
    *, visible: hygiene.Visible, environment: str = "", service: str = "", presence: str = ""
) -> Matrix:
    """Repositories x services from the index (one query over the secrets' rows, none over
    cells). ``environment`` limits presence to one environment; ``service`` shows that column
    only; ``presence`` (``present`` / ``missing``, with a ``service``) keeps the repositories
    that have or lack it."""
    found = hygiene.memo(
        "layouts",
        visible,
        lambda: list(
            hygiene.secret_rows(visible)
            .filter(unified=True, deleted_date__isnull=True)
            .values_list("name", "layout", "kind")
        ),
    )
    environments: dict[str, None] = dict.fromkeys(documents.STANDARD_ENVIRONMENTS)
    services: set[str] = set()
    for _, layout, _ in found:
        environments.update(dict.fromkeys(layout))
        for per_env in layout.values():
            services.update(per_env)
    columns = (service,) if service else tuple(sorted(services))
    matrix = Matrix(list(environments), sorted(services), list(columns))
    for name, layout, kind in found:
        envs = (environment,) if environment else tuple(layout)
        status = "" if kind == "conforming" else hygiene.KIND_LABELS.get(kind, kind)
        row = MatrixRow(hygiene.repo_of(name), name, layout, envs, columns, status)
        if service and presence and row.has(service) != (presence == "present"):
            continue
        matrix.rows.append(row)
    return matrix


def matrix_csv(matrix: Matrix) -> str:
    """The matrix as CSV: ``repository, secret, <service>...``; a cell lists the environments
    that have the service (``-`` when none). Names only."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["repository", "secret", *matrix.columns])
    for row in matrix.rows:
        writer.writerow(
            [
                _csv_safe(row.repo),
                _csv_safe(row.secret),
                *(" ".join(c.environments) or "-" for c in row.cells),
            ]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """Keep a spreadsheet from reading a name as a formula (OWASP "CSV injection")."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
