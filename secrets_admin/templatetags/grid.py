"""``{% grid_rows %}``: the body of a secret's grid, built in Python.

A large secret (10 environments x 40 services x 8 keys = 3,200 cells) cost about a second
through the template engine, one node at a time; this builds the same rows in a few
milliseconds (``make bench``, BENCHMARKS.md). Every name is escaped; no value is ever here,
only its type and fingerprint.
"""

from __future__ import annotations

import json
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

from ..reads import SecretPage

register = template.Library()

_MASK = '<span class="mask" aria-label="hidden value">••••••••</span>'
_MISSING = '<td class="cell missing"><span class="badge muted">missing</span></td>'


@register.simple_tag
def grid_rows(secret: SecretPage, reveal_url: str, can_reveal: bool) -> SafeString:
    """``<tr>`` rows of ``secret``: service and key headers, then one cell per environment.

    With ``can_reveal`` each present cell has a submit button named ``cell`` whose value is the
    JSON ``[environment, service, key]`` (the enclosing form carries the version and CSRF token;
    htmx posts it to ``reveal_url`` and swaps the closest cell).
    """
    url = escape(reveal_url)
    # Escaping commutes with concatenation, so each name is escaped once, not once per cell.
    env_label = [escape(env) for env in secret.environments]
    env_ref = [escape("[" + json.dumps(env) + ",") for env in secret.environments]
    out: list[str] = []
    for row in secret.rows:
        service, key = escape(row.service), escape(row.key)
        row_ref = escape(json.dumps(row.service) + "," + json.dumps(row.key) + "]")
        if row.first_of_service:
            out.append(f'<tr class="service-start"><th scope="row" class="service">{service}</th>')
        else:
            out.append(
                f'<tr><th scope="row" class="service"><span class="sr-only">{service}</span></th>'
            )
        out.append(f'<th scope="row" class="key">{key}</th>')
        for i, (_, cell) in enumerate(row.cells):
            if not cell.present:
                out.append(_MISSING)
                continue
            button = (
                f' <button type="submit" class="small" name="cell" value="{env_ref[i]}{row_ref}" '
                f'hx-post="{url}" aria-label="Reveal {env_label[i]} {service} {key}">Reveal</button>'
                if can_reveal
                else ""
            )
            out.append(
                f'<td class="cell">{_MASK} <span class="type">{cell.type}</span> '
                f'<code class="fp" title="fingerprint">{cell.fingerprint}</code>{button}</td>'
            )
        out.append("</tr>\n")
    return mark_safe("".join(out))  # noqa: S308 - every name is escaped above; type and fingerprint are [a-z0-9]
