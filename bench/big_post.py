"""A 20,000-field editor post: how long reading it and expanding it into a changeset take
(figures printed, not a unit test).

    .venv/bin/python bench/big_post.py [--fields 20000]

Three shapes of post, each the most fields ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` lets through: new
values with deletions beside them, deletions of whole keys, and new values alone. Each line
prints ``forms.parse_edit_intent`` and ``changes.editor.changeset_for`` times; both should grow in
proportion to the fields (double the fields, about double the time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PORTAL_TESTING", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.http import QueryDict  # noqa: E402

from secrets_admin import errors, forms  # noqa: E402
from secrets_admin.changes import editor  # noqa: E402
from secrets_admin.forms import field_name  # noqa: E402


def post(shape: str, fields: int) -> tuple[QueryDict, dict[str, dict[str, dict[str, str]]]]:
    rows = fields // 2 if shape == "set+delete" else fields
    doc = {"dev": {f"s{i}": {"k": "v"} for i in range(rows)}}
    q = QueryDict(mutable=True)
    for i in range(rows):
        if shape in ("set+delete", "set"):
            q[field_name("set", "dev", f"s{i}", "k")] = "new"
        if shape == "set+delete":
            q[field_name("delete", "dev", f"s{i}", "other")] = "on"
        if shape == "delete_key":
            q[field_name("delete_key", f"s{i}", "k")] = "on"
    return q, doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=20_000)
    args = parser.parse_args()
    for shape in ("set+delete", "delete_key", "set"):
        for fields in (args.fields // 2, args.fields):
            data, doc = post(shape, fields)
            started = time.perf_counter()
            intent = forms.parse_edit_intent(data)
            parsed = time.perf_counter()
            # A refusal comes after the expansion's checks: its time still counts.
            with contextlib.suppress(errors.ChangeRefused):
                editor.changeset_for(intent, doc)
            done = time.perf_counter()
            print(
                f"{shape:>10} {fields:>6} fields: parse_edit_intent {parsed - started:6.3f} s, "
                f"changeset_for {done - parsed:6.3f} s"
            )


if __name__ == "__main__":
    main()
