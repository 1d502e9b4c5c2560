"""Request data to use-case arguments: the grid editor's fields, and the create-secret form.

The editor posts explicit edit fields, one per intention, named by the cell they address (names
are JSON lists, so any environment, service or key name round-trips):

==========================================  =================================================
``set:["env","service","key"]``             a newly typed value (empty: leave the cell alone)
``delete:["env","service","key"]``          delete that cell (checkbox)
``delete_key:["service","key"]``            delete the key in every editable environment
``remove_service:["service"]``              value: an environment, or ``*`` for every one
``remove_environment:["env"]``              remove the environment (checkbox)
``add_service:["service","env or *"]``      add an empty service (canonical form)
``add_environment:["env"]``                 value: the environment whose structure to copy
``new-service`` / ``new-key`` /             rows for new keys, repeated in order; one value
``new-value:["env"]``                       field per environment column
``newsvc-name`` / ``newsvc-env``            rows for new services, repeated
``newenv-name`` / ``newenv-from``           rows for new environments, repeated
==========================================  =================================================

The server never serialises the form into the secret: :func:`parse_edit_intent` reads these
fields into an :class:`~secrets_admin.changes.EditIntent`, which ``changes`` applies to the
parsed base document, so untouched cells keep their exact JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from . import documents, permissions, reads
from .changes.editor import ALL_ENVIRONMENTS, VALUE_TYPES, EditIntent, editor_type
from .changes.migration import MigrationSource
from .migration import MAX_ENV_FILE_BYTES


class FormProblem(Exception):
    """The posted fields can't be read; ``message`` says what to fix."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def field_name(prefix: str, *parts: str) -> str:
    """``prefix:["part", ...]``: a field name addressing a cell, service or environment."""
    return f"{prefix}:{json.dumps(list(parts), ensure_ascii=False)}"


def _parts(name: str, count: int) -> tuple[str, ...]:
    try:
        parts = json.loads(name.split(":", 1)[1])
    except (ValueError, IndexError):
        raise FormProblem(
            "The form is damaged (a field name can't be read). Reload the editor."
        ) from None
    if not (
        isinstance(parts, list) and len(parts) == count and all(isinstance(p, str) for p in parts)
    ):
        raise FormProblem("The form is damaged (a field name can't be read). Reload the editor.")
    return tuple(parts)


def _checked(value: str) -> bool:
    return value in ("on", "1", "true")


def parse_edit_intent(data: QueryDict) -> EditIntent:
    """Read the editor's (or the review's hidden) fields into an intent. Raises :class:`FormProblem`."""
    intent = EditIntent()
    for name, values in data.lists():
        value = values[-1]
        prefix = name.split(":", 1)[0] if ":" in name else ""
        if prefix == "set":
            cell = _parts(name, 3)
            value_type = _value_type(data.get(field_name("type", *cell), "string"))
            if value != "" or value_type == "null":
                ref = (cell[0], cell[1], cell[2])
                intent.values[ref] = _value(value, cell)
                if value_type != "string":
                    intent.types[ref] = value_type
        elif prefix == "delete" and _checked(value):
            cell = _parts(name, 3)
            intent.deletes.append((cell[0], cell[1], cell[2]))
        elif prefix == "delete_key" and _checked(value):
            service, key = _parts(name, 2)
            intent.delete_keys.append((service, key))
        elif prefix == "remove_service" and value:
            (service,) = _parts(name, 1)
            intent.remove_services.append((service, value))
        elif prefix == "remove_environment" and _checked(value):
            intent.remove_environments.append(_parts(name, 1)[0])
        elif prefix == "add_service" and _checked(value):
            service, where = _parts(name, 2)
            intent.add_services.append((service, where))
        elif prefix == "add_environment":
            intent.add_environments.append((_parts(name, 1)[0], value))
    _new_keys(data, intent)
    intent.confirmation = data.get("confirm_name", "")[:600]
    for service, where in _rows(data, "newsvc-name", "newsvc-env"):
        if service:
            intent.add_services.append((service, where or ALL_ENVIRONMENTS))
    for env, source in _rows(data, "newenv-name", "newenv-from"):
        if env:
            intent.add_environments.append((env, source))
    return intent


def _value_type(value: str) -> str:
    if value not in VALUE_TYPES:
        raise FormProblem("The form is damaged (an unknown value type). Reload the editor.")
    return value


def _value(value: str, cell: tuple[str, ...]) -> str:
    if len(value.encode("utf-8")) > documents.MAX_SECRET_BYTES:
        raise FormProblem(
            f"The value for {' · '.join(cell)} alone is over AWS's limit of "
            f"{documents.MAX_SECRET_BYTES:,} bytes per secret."
        )
    return value


def _rows(data: QueryDict, *names: str) -> list[tuple[str, ...]]:
    columns = [data.getlist(n) for n in names]
    if len({len(c) for c in columns}) > 1:
        raise FormProblem("The form is damaged (rows of unequal length). Reload the editor.")
    return list(zip(*columns, strict=True))


def _new_keys(data: QueryDict, intent: EditIntent) -> None:
    services, keys = data.getlist("new-service"), data.getlist("new-key")
    types = [_value_type(t) for t in data.getlist("new-type")] or ["string"] * len(keys)
    if not len(services) == len(keys) == len(types):
        raise FormProblem("The form is damaged (rows of unequal length). Reload the editor.")
    columns = {
        _parts(name, 1)[0]: data.getlist(name) for name in data if name.startswith("new-value:")
    }
    if any(len(v) != len(keys) for v in columns.values()):
        raise FormProblem("The form is damaged (rows of unequal length). Reload the editor.")
    for i, (service, key) in enumerate(zip(services, keys, strict=True)):
        # a null in a new row is written "null" (an empty field is "no value here")
        typed = {env: values[i] for env, values in columns.items() if values[i] != ""}
        if not service and not key and not typed:
            continue  # a blank row
        if not service or not key:
            raise FormProblem(f"New key row {i + 1}: give both a service and a key name.")
        if not typed:
            raise FormProblem(
                f"New key {service} · {key}: type its value in at least one environment."
            )
        for env, value in typed.items():
            intent.values[(env, service, key)] = _value(value, (env, service, key))
            if types[i] != "string":
                intent.types[(env, service, key)] = types[i]


def intent_fields(intent: EditIntent) -> list[tuple[str, str]]:
    """The intent as hidden ``(name, value)`` fields in the canonical form (review, conflict).

    Typed values appear here: only in the pages that carry the person's own edits back.
    """
    out: list[tuple[str, str]] = []
    out += [(field_name("add_environment", env), source) for env, source in intent.add_environments]
    out += [(field_name("add_service", s, where), "on") for s, where in intent.add_services]
    out += [(field_name("set", *cell), value) for cell, value in intent.values.items()]
    out += [(field_name("type", *cell), value_type) for cell, value_type in intent.types.items()]
    out += [(field_name("delete", *cell), "on") for cell in intent.deletes]
    out += [(field_name("delete_key", s, k), "on") for s, k in intent.delete_keys]
    out += [(field_name("remove_service", s), where) for s, where in intent.remove_services]
    out += [(field_name("remove_environment", env), "on") for env in intent.remove_environments]
    if intent.confirmation:
        out.append(("confirm_name", intent.confirmation))
    return out


# --------------------------------------------------------------------------------------------
# Promote (the comparison page's selection)

#: How many rows one promotion may name (a form bigger than this is not a person's selection).
MAX_PROMOTE_ROWS = 2000


def copy_rows(data: QueryDict) -> list[tuple[str, str]]:
    """The rows chosen on the comparison page: ``row:["service","key"]`` and whole services
    ``copy_service:["service"]`` (as ``(service, "")``), checked ones only, in form order.
    Raises :class:`FormProblem` for a damaged form."""
    rows: list[tuple[str, str]] = []
    for name in data:
        if name.startswith("row:") and _checked(data.get(name, "")):
            service, key = _parts(name, 2)
            rows.append((service, key))
        elif name.startswith("copy_service:") and _checked(data.get(name, "")):
            (service,) = _parts(name, 1)
            rows.append((service, ""))
    if len(rows) > MAX_PROMOTE_ROWS:
        raise FormProblem(f"Choose at most {MAX_PROMOTE_ROWS} rows per promotion.")
    return list(dict.fromkeys(rows))


def copy_fields(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The rows as hidden fields for the review's confirm form (names only, no value)."""
    return [
        (field_name("row", s, k), "on") if k else (field_name("copy_service", s), "on")
        for s, k in rows
    ]


# --------------------------------------------------------------------------------------------
# The migration wizard


@dataclass
class MigrationRequest:
    """The wizard's fields: target repo, chosen sources with their mapping, the ``.env`` text
    (the person's own input, carried only in the review's form; never stored), overwrite."""

    repo: str
    sources: list[MigrationSource]
    env_text: str
    overwrite: bool
    env_environment: str = ""
    env_service: str = ""

    def __repr__(self) -> str:
        return f"MigrationRequest({self.repo!r}, {len(self.sources)} sources)"

    def plan_arguments(self) -> dict[str, Any]:
        """The arguments of ``migration_plan`` / ``secret_migrate`` this request gives."""
        return {
            "repo": self.repo,
            "sources": self.sources,
            "env_text": self.env_text,
            "overwrite": self.overwrite,
        }

    def fields(self) -> list[tuple[str, str]]:
        """Hidden fields that carry the request to the next step."""
        out = [("repo", self.repo), ("overwrite", "on" if self.overwrite else "")]
        for s in self.sources:
            if s.name:
                out += [
                    ("legacy", s.name),
                    *migration_source_fields(s.name, s.environment, s.service),
                ]
        out += [
            ("dotenv_text", self.env_text),
            ("dotenv_env", self.env_environment),
            ("dotenv_service", self.env_service),
        ]
        return out


def migration_source_fields(name: str, environment: str, service: str) -> list[tuple[str, str]]:
    """One legacy secret's row of the wizard as ``(field, value)`` pairs: ``source``,
    ``source_environment``, ``source_service``, repeated once per row in the same order.

    Field names carry no data: browsers percent-encode ``"`` and line breaks in the field names
    of a multipart form (WHATWG HTML, "multipart/form-data encoding algorithm"), so a name built
    from a secret's name would not reach the server intact; values are sent as they are.
    """
    return [("source", name), ("source_environment", environment), ("source_service", service)]


def migration_request(data: QueryDict, files: Any = None) -> MigrationRequest:
    """Read the wizard's fields: ``legacy`` (repeated: the names ticked for migration), the rows
    of :func:`migration_source_fields` (environment and service per legacy secret),
    ``dotenv_text`` or an uploaded ``dotenv_file``, ``dotenv_env``, ``dotenv_service``, ``repo``,
    ``overwrite``. An uploaded file wins over pasted text. Raises :class:`FormProblem` for rows
    of unequal length, or a file that is too big or not UTF-8 text."""
    mapping = {
        name: (environment.strip(), service.strip())
        for name, environment, service in _rows(
            data, "source", "source_environment", "source_service"
        )
    }
    sources = []
    for name in dict.fromkeys(data.getlist("legacy")[:200]):
        environment, service = mapping.get(name, ("", ""))
        sources.append(MigrationSource(name, environment, service))
    text = data.get("dotenv_text", "")
    upload = files.get("dotenv_file") if files is not None else None
    if upload is not None:
        if upload.size > MAX_ENV_FILE_BYTES:
            raise FormProblem(f"The .env file is over {MAX_ENV_FILE_BYTES // 1024} KiB.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise FormProblem("The .env file is not UTF-8 text.") from None
    # Browsers send form text with CRLF line ends: one form of line end keeps the review's
    # fingerprints equal to the final step's whether the file was uploaded or carried back.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_ENV_FILE_BYTES:
        raise FormProblem(f"The .env text is over {MAX_ENV_FILE_BYTES // 1024} KiB.")
    env_environment = data.get("dotenv_env", "").strip()
    env_service = data.get("dotenv_service", "").strip()
    if text.strip():
        sources.append(MigrationSource("", env_environment, env_service))
    return MigrationRequest(
        repo=data.get("repo", "").strip(),
        sources=sources,
        env_text=text,
        overwrite=_checked(data.get("overwrite", "")),
        env_environment=env_environment,
        env_service=env_service,
    )


# --------------------------------------------------------------------------------------------
# The editor grid


@dataclass
class EditorColumn:
    name: str
    protected: bool
    remove_field: str
    value_field: str  # the new-key rows' value field of this environment
    removed: bool = False


@dataclass
class EditorCell:
    """One editable cell. ``typed`` is only what this person typed (existing values never)."""

    environment: str
    present: bool
    type: str
    fingerprint: str
    protected: bool
    set_field: str
    delete_field: str
    type_field: str = ""
    value_type: str = "string"  # the editor's type: the stored one unless the person chose
    typed: str = ""
    deleted: bool = False
    empty: bool = False  # holds an empty string (needs a value)


@dataclass
class EditorRow:
    service: str
    key: str
    cells: list[EditorCell]
    first_of_service: bool
    delete_key_field: str
    delete_key_checked: bool = False
    # protected environments holding this key: "delete everywhere" proposes their deletion
    protected_holders: list[str] = field(default_factory=list)
    remove_service_field: str = ""
    remove_service_value: str = ""


@dataclass
class NewKeyRow:
    service: str = ""
    key: str = ""
    value_type: str = "string"
    values: list[tuple[EditorColumn, str]] = field(default_factory=list)


@dataclass
class EditorGrid:
    """Everything the editor form renders, with this person's edits filled back in."""

    columns: list[EditorColumn]
    rows: list[EditorRow]
    new_keys: list[NewKeyRow]
    new_services: list[tuple[str, str]]
    new_environments: list[tuple[str, str]]
    pending: list[tuple[str, str]]  # edits with no place in this grid, kept as hidden fields
    pending_labels: list[str]

    @property
    def editable_columns(self) -> list[EditorColumn]:
        return [c for c in self.columns if not c.protected]

    @property
    def service_targets(self) -> list[str]:
        """Where a new service can go: ``*`` (every editable environment) or one of them."""
        wanted = [where for _, where in self.new_services]
        names = [c.name for c in self.editable_columns]
        return [
            ALL_ENVIRONMENTS,
            *names,
            *(w for w in wanted if w not in names and w != ALL_ENVIRONMENTS),
        ]


def editor_columns(environments: list[str]) -> list[EditorColumn]:
    return [
        EditorColumn(
            env,
            permissions.is_protected(env),
            field_name("remove_environment", env),
            field_name("new-value", env),
        )
        for env in environments
    ]


def rows_only_grid(environments: list[str]) -> EditorGrid:
    """An empty grid over ``environments``: what the htmx "add a row" partials need."""
    return EditorGrid(editor_columns(environments), [], [], [], [], [], [])


def blank_key_row(columns: list[EditorColumn]) -> NewKeyRow:
    return NewKeyRow(values=[(c, "") for c in columns if not c.protected])


def editor_grid(page: reads.SecretPage, intent: EditIntent, *, blank_rows: int = 1) -> EditorGrid:
    """Lay the intent over the grid of ``page``: typed values into their cells, the rest into
    new-key rows, and what fits nowhere (an environment that no longer exists) into ``pending``."""
    columns = editor_columns(page.environments)
    by_name = {c.name: c for c in columns}
    for env in intent.remove_environments:
        if env in by_name:
            by_name[env].removed = True
    values = dict(intent.values)
    types = intent.types
    deletes = set(intent.deletes)
    delete_keys = set(intent.delete_keys)
    remove_services = dict(intent.remove_services)
    rows: list[EditorRow] = []
    for row in page.rows:
        cells = []
        for env, view in row.cells:
            cell = (env, row.service, row.key)
            cells.append(
                EditorCell(
                    environment=env,
                    present=view.present,
                    type=view.type,
                    fingerprint=view.fingerprint,
                    protected=by_name[env].protected,
                    set_field=field_name("set", *cell),
                    delete_field=field_name("delete", *cell),
                    type_field=field_name("type", *cell),
                    value_type=types.get(cell, "string")
                    if cell in values
                    else editor_type(view.type)
                    if view.present
                    else "string",
                    typed=values.pop(cell, ""),
                    empty=view.empty,
                    deleted=cell in deletes,
                )
            )
            deletes.discard(cell)
        rows.append(
            EditorRow(
                service=row.service,
                key=row.key,
                cells=cells,
                first_of_service=row.first_of_service,
                delete_key_field=field_name("delete_key", row.service, row.key),
                delete_key_checked=(row.service, row.key) in delete_keys,
                protected_holders=[c.environment for c in cells if c.protected and c.present],
                remove_service_field=field_name("remove_service", row.service),
                remove_service_value=remove_services.pop(row.service, "")
                if row.first_of_service
                else "",
            )
        )
        delete_keys.discard((row.service, row.key))
    new_keys: dict[tuple[str, str], NewKeyRow] = {}
    pending: list[tuple[str, str]] = []
    labels: list[str] = []
    for (env, service, key), value in values.items():
        column = by_name.get(env)
        value_type = types.get((env, service, key), "string")
        row_ = new_keys.setdefault((service, key), NewKeyRow(service, key, value_type))
        if column is None or column.protected or row_.value_type != value_type:
            pending.append((field_name("set", env, service, key), value))
            if value_type != "string":
                pending.append((field_name("type", env, service, key), value_type))
            labels.append(f"new value for {env} · {service} · {key}")
            continue
        row_.values.append((column, value))
    new_keys = {k: r for k, r in new_keys.items() if r.values}
    for row_ in new_keys.values():
        typed = dict((c.name, v) for c, v in row_.values)
        row_.values = [(c, typed.get(c.name, "")) for c in columns if not c.protected]
    for cell in sorted(deletes):
        pending.append((field_name("delete", *cell), "on"))
        labels.append(f"delete {' · '.join(cell)}")
    for service, key in sorted(delete_keys):
        pending.append((field_name("delete_key", service, key), "on"))
        labels.append(f"delete {service} · {key} everywhere")
    for service, where in remove_services.items():
        pending.append((field_name("remove_service", service), where))
        labels.append(f"remove service {service}")
    for env in intent.remove_environments:
        if env not in by_name:
            pending.append((field_name("remove_environment", env), "on"))
            labels.append(f"remove environment {env}")
    rows_ = list(new_keys.values()) + [blank_key_row(columns) for _ in range(blank_rows)]
    return EditorGrid(
        columns=columns,
        rows=rows,
        new_keys=rows_,
        new_services=list(intent.add_services),
        new_environments=list(intent.add_environments),
        pending=pending,
        pending_labels=labels,
    )


# --------------------------------------------------------------------------------------------
# Creating a secret


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class SecretCreateForm(forms.Form):
    """Admins: a new unified secret ``<repo><suffix>`` with its first version."""

    repo = forms.CharField(
        label="Repository name",
        max_length=500,
        help_text="The secret is named after the repository: <repo>-secrets.",
    )
    description = forms.CharField(max_length=2048, required=False)
    environments = forms.CharField(
        initial=", ".join(documents.STANDARD_ENVIRONMENTS),
        help_text="Comma-separated; the standard's are sandbox, dev and main.",
    )
    services = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        label="Services template",
        help_text="Optional. One service per line, with its keys: stripe: public_key, secret_key. "
        "Every environment gets these keys with empty values.",
    )
    tags = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Optional. One Key=Value per line.",
    )
    kms_key_id = forms.CharField(
        label="KMS key",
        max_length=2048,
        required=False,
        help_text="Optional key id, ARN or alias; empty uses aws/secretsmanager.",
    )

    def clean_repo(self) -> str:
        repo: str = self.cleaned_data["repo"].strip()
        suffix = settings.PORTAL_SECRET_SUFFIX
        if repo.endswith(suffix):
            repo = repo[: -len(suffix)]
        problem = documents.secret_name_problem(repo + suffix, suffix)
        if problem:
            raise forms.ValidationError(f"{repo}{suffix}: {problem}.")
        return repo

    def clean_environments(self) -> list[str]:
        envs = [e.strip() for e in self.cleaned_data["environments"].split(",") if e.strip()]
        if not envs:
            raise forms.ValidationError("Give at least one environment.")
        for env in envs:
            problem = documents.name_problem(env)
            if problem:
                raise forms.ValidationError(f"{env!r}: {problem}.")
        return list(dict.fromkeys(envs))

    def clean_services(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in _lines(self.cleaned_data["services"]):
            service, _, keys = line.partition(":")
            names = [service.strip()] + [k.strip() for k in keys.split(",") if k.strip()]
            for name in names:
                problem = documents.name_problem(name)
                if problem:
                    raise forms.ValidationError(f"{line!r}: {problem}.")
            out[names[0]] = names[1:]
        return out

    def clean_tags(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in _lines(self.cleaned_data["tags"]):
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or len(key) > 128 or len(value) > 256:
                raise forms.ValidationError(
                    f"{line!r}: write Key=Value (key 1-128 characters, value up to 256)."
                )
            out[key] = value
        return out

    def use_case_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "repo": data["repo"],
            "description": data["description"],
            "environments": data["environments"],
            "services": data["services"],
            "tags": data["tags"],
            "kms_key_id": data["kms_key_id"].strip(),
        }
