"""The standard's own client reads what the portal wrote.

The standard's apps read with ``GetSecretValueCommand({ SecretId })`` (no version stage) from the
npm package ``@aws-sdk/client-secrets-manager``, then run the assignments the portal's integration
page generates, with ``AWS_BRANCH`` naming the environment. This test runs exactly that in Node
(``tests/node_client``, installed by ``make node-deps``) against the test moto server after portal
saves, a restore and an applied change request.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from secrets_admin import aws
from secrets_admin.models import ChangeRequest

from .portal_flows import approve_change_request, restore_environment, save_cells

pytestmark = pytest.mark.django_db

CLIENT_DIR = Path(__file__).resolve().parent / "node_client"
NAME = "shop-secrets"
#: Every environment has the same services, as the standard's documents do (the generated
#: assignments read ``config.<service>.<key>`` for every key of the secret).
DOC = {
    env: {
        "stripe": {"public_key": f"pk_{env}", "secret_key": f"sk_{env}"},
        "databricks": {"client_id": f"{env}-client"},
    }
    for env in ("sandbox", "dev", "main")
}
SNIPPET = re.compile(r'<pre[^>]*aria-label="TypeScript assignments"[^>]*>(.*?)</pre>', re.S)


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    assert path, "Node.js is needed for the standard's client (make node-deps)"
    assert (CLIENT_DIR / "node_modules" / "@aws-sdk" / "client-secrets-manager").is_dir(), (
        "run `make node-deps` (npm ci in tests/node_client)"
    )
    return path


def generated_snippet(client: Any, tmp_path: Path) -> Path:
    page = client.get(reverse("secrets_admin:secret_integration", args=[NAME]))
    assert page.status_code == HTTPStatus.OK
    match = SNIPPET.search(page.content.decode())
    assert match, "the integration page shows the getSecrets() assignments"
    path = tmp_path / "snippet.js"
    path.write_text(html.unescape(match.group(1)), encoding="utf-8")
    return path


def app_reads(node: str, snippet: Path, environment: str) -> dict[str, str]:
    """process.env as the standard's app sets it on the branch ``environment``."""
    env = {
        **os.environ,
        "AWS_BRANCH": environment,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
    }
    done = subprocess.run(
        [node, "get_secrets.mjs", NAME, str(snippet)],
        cwd=CLIENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


def test_node_client_reads_each_environment_after_saves_restore_and_change_request(
    node: str,
    as_user: Any,
    engineer: Any,
    approver: Any,
    make_secret: Any,
    tmp_path: Path,
    client: Any,
) -> None:
    make_secret(NAME, DOC)
    first = aws.read_current(NAME).version_id
    writer = as_user(engineer)
    snippet = generated_snippet(writer, tmp_path)

    save_cells(writer, NAME, {("dev", "stripe", "secret_key"): "sk_test_dev_2"})
    save_cells(writer, NAME, {("sandbox", "stripe", "public_key"): "pk_test_sand_2"})
    assert app_reads(node, snippet, "dev") == {
        "STRIPE_PUBLIC_KEY": "pk_dev",
        "STRIPE_SECRET_KEY": "sk_test_dev_2",
        "DATABRICKS_CLIENT_ID": "dev-client",
    }

    restore_environment(writer, NAME, "dev", first)
    assert app_reads(node, snippet, "dev")["STRIPE_SECRET_KEY"] == "sk_dev"

    save_cells(writer, NAME, {("main", "stripe", "secret_key"): "sk_live_2"}, comment="rotate")
    request = ChangeRequest.objects.get()
    client.force_login(approver)
    approve_change_request(client, request.pk)
    request.refresh_from_db()
    assert request.status == ChangeRequest.Status.APPLIED

    assert app_reads(node, snippet, "main") == {
        "STRIPE_PUBLIC_KEY": "pk_main",
        "STRIPE_SECRET_KEY": "sk_live_2",
        "DATABRICKS_CLIENT_ID": "main-client",
    }
    assert app_reads(node, snippet, "dev")["STRIPE_SECRET_KEY"] == "sk_dev"
    assert app_reads(node, snippet, "sandbox") == {
        "STRIPE_PUBLIC_KEY": "pk_test_sand_2",
        "STRIPE_SECRET_KEY": "sk_sandbox",
        "DATABRICKS_CLIENT_ID": "sandbox-client",
    }
