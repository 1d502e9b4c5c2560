"""Integration snippets for one unified secret: the IAM policy an application role needs, and the
environment variables each service's keys map to. Pure: no I/O, no Django, no boto3.

Sources: the standard's Step 5 ("Configure Amplify Service Role IAM Permissions": only
``secretsmanager:GetSecretValue`` on ``arn:aws:secretsmanager:<region>:<account>:secret:<name>-*``)
and its ``getSecrets()``, which sets ``process.env.<SERVICE>_<KEY>`` from
``allSecrets[AWS_BRANCH || 'sandbox'].<service>.<key>``. Names only, never a value.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import documents

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_JS_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

#: Longest comment line of the generated snippet (characters), so it reads without scrolling.
SNIPPET_WIDTH = 100

#: The key Secrets Manager uses when a secret names no KMS key (nothing extra to grant).
DEFAULT_KMS_ALIAS = "alias/aws/secretsmanager"


def env_var_name(service: str, key: str) -> str:
    """``<SERVICE>_<KEY>`` upper-cased, every character but ASCII letters and digits made ``_``.

    A name that would start with a digit gets a leading ``_`` (POSIX shells refuse it otherwise).
    ``env_var_name("stripe", "secret-key") == "STRIPE_SECRET_KEY"``.
    """
    name = _NOT_ALNUM.sub("_", f"{service}_{key}").upper()
    return f"_{name}" if name[:1].isdigit() else name


@dataclass(frozen=True)
class EnvVar:
    """One environment variable the standard's ``getSecrets()`` would set.

    ``environments`` lists where the key exists and ``missing`` the other environments of the
    secret (where reading it would throw); ``types`` the JSON types seen (non-strings are
    stringified by Node); ``clashes`` the other ``service.key`` cells mapped to the same name.
    """

    name: str
    service: str
    key: str
    environments: tuple[str, ...]
    types: tuple[str, ...]
    clashes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def cell(self) -> str:
        """``service.key``, as the grid names it."""
        return f"{self.service}.{self.key}"

    @property
    def access(self) -> str:
        """JavaScript that reads this key from the environment's config object."""
        path = "config"
        for part in (self.service, self.key):
            path += f".{part}" if _JS_IDENTIFIER.match(part) else f"[{json.dumps(part)}]"
        if {"object", "array"} & set(self.types):
            return f"JSON.stringify({path})"
        return path


def env_vars(document: Mapping[str, Any]) -> list[EnvVar]:
    """Every ``(service, key)`` of a conforming document as an :class:`EnvVar`, in grid order."""
    grid = documents.grid(document)
    by_name: dict[str, list[str]] = {}
    for row in grid.rows:
        by_name.setdefault(env_var_name(row.service, row.key), []).append(
            f"{row.service}.{row.key}"
        )
    out = []
    for row in grid.rows:
        name = env_var_name(row.service, row.key)
        here = f"{row.service}.{row.key}"
        out.append(
            EnvVar(
                name=name,
                service=row.service,
                key=row.key,
                environments=tuple(e for e in grid.environments if e in row.values),
                types=tuple(dict.fromkeys(documents.value_type(v) for v in row.values.values())),
                clashes=tuple(c for c in by_name[name] if c != here),
                missing=tuple(grid.missing(row)),
            )
        )
    return out


def snippet_environments(variables: list[EnvVar]) -> list[str]:
    """Every environment the variables were read from, the standard's (sandbox, dev, main) first."""
    seen = dict.fromkeys(e for v in variables for e in (*v.environments, *v.missing))
    return documents.environments(seen)


def typescript_snippet(secret_name: str, variables: list[EnvVar]) -> str:
    """The assignments of the standard's ``getSecrets()``, ready to paste: one ``case`` per
    environment that sets only the keys that environment has, and names the ones it lacks.

    The standard's loop reads ``config.<service>.<key>`` for one fixed list of keys, which throws a
    ``TypeError`` in an environment without that service; here each environment reads only its
    own keys. An environment added after the snippet was made reaches ``default`` and throws a
    sentence saying to generate it again. Names only, never a value.
    """
    lines = [
        "const ENV_KEY = process.env.AWS_BRANCH || 'sandbox';",
        f"// allSecrets = JSON.parse(SecretString of {json.dumps(secret_name)})",
        "const config = allSecrets[ENV_KEY];",
        "if (!config) {",
        "  throw new Error(`No config found for environment: ${ENV_KEY}`);",
        "}",
        "switch (ENV_KEY) {",
    ]
    for environment in snippet_environments(variables):
        lines.append(f"  case {json.dumps(environment)}:")
        service = None
        for var in variables:
            if environment not in var.environments:
                continue
            if var.service != service:
                lines.append(f"    // {var.service}")
                service = var.service
            lines.append(f"    process.env.{var.name} = {var.access};")
        lacking = [f"{v.name} ({v.cell})" for v in variables if environment in v.missing]
        if lacking:
            lines += textwrap.wrap(
                f"{environment} lacks: {', '.join(lacking)}",
                width=SNIPPET_WIDTH,
                initial_indent="    // ",
                subsequent_indent="    //   ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        lines.append("    break;")
    lines += [
        "  default:",
        "    throw new Error(",
        "      `Environment ${ENV_KEY} is newer than this snippet: generate it again in the portal.`",
        "    );",
        "}",
    ]
    return "\n".join(lines)


def dotenv_names(variables: list[EnvVar]) -> str:
    """A ``.env.local`` skeleton (names only, values left empty) for the standard's optional
    developer override."""
    return "\n".join(f"{name}=" for name in dict.fromkeys(v.name for v in variables))


def secret_arn_pattern(*, partition: str, region: str, account: str, name: str) -> str:
    """The resource of the standard's Step 5: the secret's ARN with ``-*`` for AWS's random
    six-character suffix."""
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-*"


def kms_key_arn(kms_key_id: str, *, partition: str, region: str, account: str) -> str:
    """The ARN of a customer managed KMS key from DescribeSecret's ``KmsKeyId``.

    Returns "" for the AWS managed key (nothing to grant) and for aliases (IAM grants
    ``kms:Decrypt`` on key ARNs, not alias names: the caller says so instead).
    """
    if (
        not kms_key_id
        or kms_key_id == DEFAULT_KMS_ALIAS
        or kms_key_id.endswith(":" + DEFAULT_KMS_ALIAS)
    ):
        return ""
    if kms_key_id.startswith("arn:"):
        return "" if ":alias/" in kms_key_id else kms_key_id
    if kms_key_id.startswith("alias/"):
        return ""
    return f"arn:{partition}:kms:{region}:{account}:key/{kms_key_id}"


def read_policy(
    *, partition: str, region: str, account: str, name: str, kms_key: str = ""
) -> dict[str, Any]:
    """The least-privilege IAM policy for an application role that reads this one secret.

    ``kms_key`` (a key ARN from :func:`kms_key_arn`) adds ``kms:Decrypt`` on that key, only
    through Secrets Manager (``kms:ViaService``), which a secret under a customer managed key
    needs.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadUnifiedSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [
                secret_arn_pattern(partition=partition, region=region, account=account, name=name)
            ],
        }
    ]
    if kms_key:
        statements.append(
            {
                "Sid": "DecryptUnifiedSecret",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [kms_key],
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def policy_cli(policy: Mapping[str, Any]) -> str:
    """The standard's Step 5 commands that attach ``policy`` inline to an application role."""
    return "\n".join(
        [
            "cat > /tmp/secrets-read-policy.json << 'EOF'",
            json.dumps(policy, indent=2),
            "EOF",
            "",
            "aws iam put-role-policy \\",
            "  --role-name {AppRoleName} \\",
            "  --policy-name SecretsManagerReadAccess \\",
            "  --policy-document file:///tmp/secrets-read-policy.json",
            "",
            "rm /tmp/secrets-read-policy.json",
        ]
    )
