"""Integration snippets: environment-variable names, the IAM policy, STS account id."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from secrets_admin import aws, documents, integration


@pytest.mark.parametrize(
    ("service", "key", "name"),
    [
        ("databricks", "server_hostname", "DATABRICKS_SERVER_HOSTNAME"),
        ("stripe", "secret-key", "STRIPE_SECRET_KEY"),
        ("my service", "api.key", "MY_SERVICE_API_KEY"),
        ("café", "clé", "CAF__CL_"),
        ("3scale", "token", "_3SCALE_TOKEN"),
    ],
)
def test_env_var_name_upper_cases_and_sanitises(service: str, key: str, name: str) -> None:
    assert integration.env_var_name(service, key) == name


def test_env_vars_list_environments_types_and_clashes() -> None:
    doc = documents.parse(
        json.dumps(
            {
                "dev": {"stripe": {"secret_key": "a", "secret-key": "b"}, "flags": {"on": True}},
                "main": {"stripe": {"secret_key": "c"}, "flags": {"on": {"x": 1}}},
            }
        )
    )
    variables = {(v.service, v.key): v for v in integration.env_vars(doc)}
    sk = variables[("stripe", "secret_key")]
    assert sk.name == "STRIPE_SECRET_KEY"
    assert sk.environments == ("dev", "main")
    assert sk.clashes == ("stripe.secret-key",)
    assert variables[("stripe", "secret-key")].clashes == ("stripe.secret_key",)
    on = variables[("flags", "on")]
    assert on.types == ("boolean", "object") and on.access == "JSON.stringify(config.flags.on)"
    snippet = integration.typescript_snippet("x-secrets", list(variables.values()))
    assert 'process.env.STRIPE_SECRET_KEY = config["stripe"]' not in snippet
    assert "process.env.STRIPE_SECRET_KEY = config.stripe.secret_key;" in snippet
    assert 'config.stripe["secret-key"]' in snippet
    assert integration.dotenv_names(list(variables.values())).splitlines() == [
        "STRIPE_SECRET_KEY=",
        "FLAGS_ON=",
    ]


def test_read_policy_is_least_privilege_on_the_one_secret() -> None:
    policy = integration.read_policy(
        partition="aws", region="eu-west-1", account="123456789012", name="app-secrets"
    )
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-secrets-*"
    ]
    assert "put-role-policy" in integration.policy_cli(policy)


@pytest.mark.parametrize(
    ("kms_id", "arn"),
    [
        ("", ""),
        ("alias/aws/secretsmanager", ""),
        ("alias/custom", ""),
        ("arn:aws:kms:eu-west-1:111:alias/custom", ""),
        ("1234abcd-12ab", "arn:aws:kms:eu-west-1:123:key/1234abcd-12ab"),
        ("arn:aws:kms:eu-west-1:111:key/k", "arn:aws:kms:eu-west-1:111:key/k"),
    ],
)
def test_kms_key_arn_only_for_customer_managed_keys(kms_id: str, arn: str) -> None:
    assert (
        integration.kms_key_arn(kms_id, partition="aws", region="eu-west-1", account="123") == arn
    )


def test_policy_with_a_customer_managed_key_grants_decrypt_through_secrets_manager() -> None:
    policy = integration.read_policy(
        partition="aws", region="eu-west-1", account="1", name="a-secrets", kms_key="arn:k"
    )
    decrypt = policy["Statement"][1]
    assert decrypt["Action"] == ["kms:Decrypt"] and decrypt["Resource"] == ["arn:k"]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == (
        "secretsmanager.eu-west-1.amazonaws.com"
    )


def test_caller_identity_comes_from_sts(moto_endpoint: Any) -> None:
    caller = aws.caller_identity()
    assert caller.account == "123456789012"
    assert caller.partition == "aws"


def test_caller_identity_failure_is_a_sentence(monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    aws.reset_clients()
    with pytest.raises(aws.ServiceUnavailable, match="could not be reached"):
        aws.caller_identity()


SPARSE = {
    "sandbox": {"stripe": {"secret_key": "s1"}},
    "dev": {"stripe": {"secret_key": "s2"}, "db": {"port": 5432}},
    "main": {"stripe": {"secret_key": "s3"}, "db": {"port": 5433}, "only main": {"flag": True}},
    "qa": {},
}


def _run_snippet(snippet: str, all_secrets: Any, branch: str) -> dict[str, Any]:
    """Run the snippet in Node with ``AWS_BRANCH=branch``; the variables it set, or its error."""
    program = (
        f"const allSecrets = {json.dumps(all_secrets)};\n"
        "const before = new Set(Object.keys(process.env));\n"
        f"try {{\n{snippet}\n}} catch (e) {{ console.log(JSON.stringify({{error: e.message}})); "
        "process.exit(0); }\n"
        "const set = {};\n"
        "for (const k of Object.keys(process.env)) if (!before.has(k)) set[k] = process.env[k];\n"
        "console.log(JSON.stringify({set}));\n"
    )
    done = subprocess.run(
        ["node", "-e", program],
        env={"PATH": os.environ["PATH"], "AWS_BRANCH": branch},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_snippet_sets_each_environments_own_keys_in_node_without_throwing() -> None:
    variables = integration.env_vars(documents.parse(json.dumps(SPARSE)))
    snippet = integration.typescript_snippet("app-secrets", variables)
    assert _run_snippet(snippet, SPARSE, "sandbox") == {"set": {"STRIPE_SECRET_KEY": "s1"}}
    assert _run_snippet(snippet, SPARSE, "dev") == {
        "set": {"STRIPE_SECRET_KEY": "s2", "DB_PORT": "5432"}
    }
    assert _run_snippet(snippet, SPARSE, "main") == {
        "set": {"STRIPE_SECRET_KEY": "s3", "DB_PORT": "5433", "ONLY_MAIN_FLAG": "true"}
    }
    assert _run_snippet(snippet, SPARSE, "qa") == {"set": {}}
    newer = _run_snippet(snippet, {**SPARSE, "staging": {"x": {"y": "z"}}}, "staging")
    assert "generate it again" in newer["error"]


def test_the_snippet_names_the_keys_each_environment_lacks() -> None:
    variables = integration.env_vars(documents.parse(json.dumps(SPARSE)))
    by_cell = {v.cell: v for v in variables}
    assert by_cell["db.port"].missing == ("sandbox", "qa")
    assert by_cell["stripe.secret_key"].missing == ("qa",)
    lines = integration.typescript_snippet("app-secrets", variables).splitlines()
    assert "    // sandbox lacks: DB_PORT (db.port), ONLY_MAIN_FLAG (only main.flag)" in lines
    assert "    // dev lacks: ONLY_MAIN_FLAG (only main.flag)" in lines
    assert not any(line.startswith("    // main lacks") for line in lines)
    assert integration.snippet_environments(variables) == ["sandbox", "dev", "main", "qa"]
