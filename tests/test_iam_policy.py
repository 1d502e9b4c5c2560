"""The IAM policies in ``deploy/iam`` grant exactly the AWS operations the gateway calls.

The operations are read from the gateway's source (``secrets_admin/aws.py``, the only module that
talks to AWS): every ``<client>.<method>(...)`` whose receiver is one of the gateway's client
factories, mapped to AWS's operation name through botocore's own service model. Reads go through
``client()``/``sts_client()`` (the portal's role: ``portal-read.json``), writes through
``_write_client()`` (the write role, ``PORTAL_WRITE_ROLE_ARN``: ``portal-write.json``).

Permissions that are not operations (IAM Service Authorization Reference):
``sts:SetSourceIdentity`` for an ``AssumeRole`` that passes ``SourceIdentity``, and
``secretsmanager:TagResource`` for a ``CreateSecret`` that passes ``Tags``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from secrets_admin import aws

ROOT = Path(__file__).resolve().parent.parent
IAM = ROOT / "deploy" / "iam"
#: The gateway's client factories: receiver -> (AWS service, policy that must grant its calls).
FACTORIES = {
    "client": ("secretsmanager", "portal-read.json"),
    "sts_client": ("sts", "portal-read.json"),
    "_write_client": ("secretsmanager", "portal-write.json"),
    "write_client": ("secretsmanager", "portal-write.json"),
}
#: (operation, parameter passed) -> the extra IAM action AWS then checks.
PARAMETER_ACTIONS = {
    ("sts:AssumeRole", "SourceIdentity"): "sts:SetSourceIdentity",
    ("secretsmanager:CreateSecret", "Tags"): "secretsmanager:TagResource",
}
#: AWS refuses resource scoping for these (Service Authorization Reference: no resource type).
UNSCOPABLE = {"secretsmanager:ListSecrets", "sts:GetCallerIdentity"}


def operation_names(service: str) -> dict[str, str]:
    """boto3 method name -> AWS operation name (``list_secrets`` -> ``ListSecrets``)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def _strings_in(node: ast.AST) -> set[str]:
    found = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)}
    found |= {k.arg for n in ast.walk(node) if isinstance(n, ast.Call) for k in n.keywords if k.arg}
    return {s for s in found if isinstance(s, str)}


def gateway_calls() -> Iterator[tuple[str, str, str]]:
    """``(policy file, IAM action, where)`` for every AWS call in the gateway's source."""
    source = Path(aws.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    methods = {s: operation_names(s) for s in ("secretsmanager", "sts")}
    every_method = set(methods["secretsmanager"]) | set(methods["sts"])
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    for function in functions:
        # Local names bound to a factory's client (``writer = _write_client(...)``).
        bound = {
            target.id: node.value.func.id
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in FACTORIES
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, node.func.value
            factory = (
                receiver.func.id
                if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
                else bound.get(receiver.id)
                if isinstance(receiver, ast.Name)
                else None
            )
            where = f"aws.py:{node.lineno} {function.name}()"
            if factory not in FACTORIES:
                # An AWS call through anything else would escape this test: refuse it.
                assert method not in every_method or method == "client", (
                    f"{where} calls {method} on a receiver the test does not know"
                )
                continue
            service, policy = FACTORIES[factory]
            assert method in methods[service], f"{where}: {service} has no {method}"
            action = f"{service}:{methods[service][method]}"
            yield policy, action, where
            strings = _strings_in(function)
            for (op, parameter), extra in PARAMETER_ACTIONS.items():
                if op == action and parameter in strings:
                    yield policy, extra, where


def policy_actions(name: str) -> dict[str, list[Any]]:
    """IAM action -> the Resource of each statement granting it."""
    document = json.loads((IAM / name).read_text(encoding="utf-8"))
    assert document["Version"] == "2012-10-17"
    out: dict[str, list[Any]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action, f"{name}: wildcard action {action}"
            out.setdefault(action, []).append(statement["Resource"])
    return out


def called() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {p: set() for p in ("portal-read.json", "portal-write.json")}
    for policy, action, _ in gateway_calls():
        out[policy].add(action)
    return out


def test_the_gateway_calls_the_operations_the_policies_are_written_for() -> None:
    # The list the policies answer; a new AWS call in the gateway shows up here first.
    assert called() == {
        "portal-read.json": {
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:ListSecretVersionIds",
            "secretsmanager:ListSecrets",
            "sts:AssumeRole",
            "sts:GetCallerIdentity",
            "sts:SetSourceIdentity",
        },
        "portal-write.json": {
            "secretsmanager:CreateSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:RestoreSecret",
            "secretsmanager:TagResource",
            "secretsmanager:UpdateSecretVersionStage",
        },
    }


@pytest.mark.parametrize("policy", ["portal-read.json", "portal-write.json"])
def test_policy_grants_every_operation_the_code_calls_and_nothing_else(policy: str) -> None:
    needed = called()[policy]
    granted = set(policy_actions(policy))
    assert needed - granted == set(), f"{policy} lacks {sorted(needed - granted)}"
    assert granted - needed == set(), f"{policy} grants unused {sorted(granted - needed)}"


@pytest.mark.parametrize("policy", ["portal-read.json", "portal-write.json"])
def test_secret_permissions_are_scoped_to_unified_secret_arns(policy: str, settings: Any) -> None:
    for action, resources in policy_actions(policy).items():
        for resource in resources:
            if action in UNSCOPABLE:
                assert resource == "*"
            elif action.startswith("secretsmanager:"):
                # AWS appends "-" and six random characters to every secret's ARN.
                assert resource == (
                    "arn:aws:secretsmanager:REGION:ACCOUNT_ID:secret:"
                    f"*{settings.PORTAL_SECRET_SUFFIX}-??????"
                )
            else:
                assert resource == "arn:aws:iam::ACCOUNT_ID:role/secrets-portal-write"


#: Modules that call AWS, each with the policy file that grants its calls.
AWS_CALLERS = {
    "secrets_admin/aws.py": ("portal-read.json", "portal-write.json"),
    # The audit devices and the anchor sink (CloudWatch Logs, S3 with Object Lock).
    "secrets_admin/audit_devices.py": ("portal-audit-sinks.json",),
    # The demo creates its own Object-Lock bucket in the embedded moto server: no AWS account.
    "secrets_admin/demo.py": (),
}


def test_every_module_that_calls_aws_has_a_policy() -> None:
    """A new AWS caller (an audit sink writing to CloudWatch Logs or S3, say) needs its own
    policy in deploy/iam and a line in AWS_CALLERS, with its operations checked like the gateway's."""
    callers = set()
    for path in sorted((ROOT / "secrets_admin").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (
                node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
            )
        }
        if imported & {"boto3", "botocore", "aiobotocore"}:
            callers.add(path.relative_to(ROOT).as_posix())
    assert callers == set(AWS_CALLERS)
    for policies in AWS_CALLERS.values():
        assert all((IAM / p).is_file() for p in policies)
