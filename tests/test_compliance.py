"""Each compliance rule with a failing and a passing example (pure: no AWS, no database)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from secrets_admin import compliance as c
from secrets_admin import documents

GOOD = {
    "sandbox": {"stripe": {"secret_key": "sk_test_s"}},
    "dev": {"stripe": {"secret_key": "sk_test_d"}},
    "main": {"stripe": {"secret_key": "sk_live_m"}},
}
POLICY = c.Policy(value_rules=tuple(c.value_rules(c.DEFAULT_VALUE_RULES)))


@dataclass(frozen=True)
class Meta:
    name: str
    current_version: str = "v1"
    owning_service: str = ""
    scheduled_for_deletion: bool = False


def findings(
    secrets: dict[str, Any], *, policy: c.Policy = POLICY, metas: list[Meta] | None = None
) -> list[c.Finding]:
    """Check ``secrets`` (name -> document, JSON text, None for "not read", or Unreadable)."""
    contents: dict[str, documents.Classified | c.Unreadable] = {}
    for name, value in secrets.items():
        if isinstance(value, c.Unreadable):
            contents[name] = value
        elif value is not None and name.endswith(policy.suffix):
            text = value if isinstance(value, str) else json.dumps(value)
            contents[name] = documents.classify(text)
    listed = metas if metas is not None else [Meta(n) for n in secrets]
    return c.check(listed, contents, policy=policy)


def rules(found: list[c.Finding]) -> list[str]:
    return [f.rule for f in found]


def test_a_conforming_account_has_no_findings() -> None:
    assert findings({"app-secrets": GOOD, "shared/rds-password": None}) == []


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("app-secrets", False),
        ("my_app.v2-secrets", False),
        ("MyApp-secrets", True),
        ("team/app-secrets", True),
        ("-secrets", True),
    ],
)
def test_naming_repo_name(name: str, bad: bool) -> None:
    assert ("naming.repo-name" in rules(findings({name: GOOD}))) is bad


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("billing-secret", "billing-secrets"),
        ("billing_secrets", "billing-secrets"),
        ("billing-Secrets", "billing-secrets"),
    ],
)
def test_naming_near_miss(name: str, target: str) -> None:
    (finding,) = findings({name: None})
    assert (finding.rule, finding.related) == ("naming.near-miss", target)
    assert findings({"billing-secrets": GOOD}) == []


def test_naming_environment_in_a_unified_name() -> None:
    found = findings({"app-secrets": GOOD, "app-dev-secrets": GOOD, "solo-main-secrets": GOOD})
    by_secret = {f.secret: f for f in found if f.rule == "naming.environment-in-name"}
    assert by_secret["app-dev-secrets"].related == "app-secrets"
    assert by_secret["app-dev-secrets"].environment == "dev"
    assert by_secret["solo-main-secrets"].related == "solo-secrets"
    assert "app-secrets" not in by_secret
    # A repo whose name merely extends another repo's is not flagged.
    assert findings({"project-secrets": GOOD, "project-management-secrets": GOOD}) == []


@pytest.mark.parametrize(
    ("legacy", "service", "environment"),
    [
        ("app-databricks-sandbox", "databricks", "sandbox"),
        ("app-databricks-prod", "databricks", "prod"),
        ("app-dev-stripe", "stripe", "dev"),
        ("app-main", "", "main"),
        ("app-stripe", "stripe", ""),
    ],
)
def test_legacy_secret_beside_its_unified_secret(
    legacy: str, service: str, environment: str
) -> None:
    (finding,) = findings({"app-secrets": GOOD, legacy: None})
    assert finding.rule == "legacy.fold-into-unified"
    assert (finding.secret, finding.related) == (legacy, "app-secrets")
    assert (finding.service, finding.environment) == (service, environment)
    assert finding.fix == c.Fix("secret_detail", ("app-secrets",), label="open app-secrets")


def test_legacy_match_prefers_the_longest_repo() -> None:
    match = c.legacy_match(
        "project-management-stripe-main", ["project", "project-management"], ["main"]
    )
    assert match == c.LegacyMatch("project-management", "stripe", "main")


def test_legacy_secrets_scheduled_for_deletion_or_owned_by_a_service_are_skipped() -> None:
    metas = [
        Meta("app-secrets"),
        Meta("app-stripe-dev", scheduled_for_deletion=True),
        Meta("app-rds", owning_service="rds"),
    ]
    assert findings({"app-secrets": GOOD}, metas=metas) == []


def test_legacy_per_environment_secret_without_a_unified_one() -> None:
    (finding,) = findings({"billing-stripe-dev": None})
    assert (finding.rule, finding.environment) == ("legacy.per-environment", "dev")
    assert findings({"billing-stripe": None}) == []  # nothing says it is ours


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("DATABASE_URL=x", "not valid JSON"),
        ("", "empty"),
        ('{"dev": "flat"}', "holds a string"),
        ("[1]", "JSON array"),
    ],
)
def test_structure_not_conforming(value: str, part: str) -> None:
    (finding,) = findings({"app-secrets": value})
    assert finding.rule == "structure.not-conforming" and finding.severity == "error"
    assert part in finding.message
    assert "DATABASE_URL=x" not in finding.message


def test_structure_no_value_and_unreadable() -> None:
    metas = [Meta("new-secrets", current_version=""), Meta("app-secrets"), Meta("kms-secrets")]
    found = findings(
        {"app-secrets": GOOD, "kms-secrets": c.Unreadable("AWS KMS could not decrypt")},
        metas=metas,
    )
    assert [(f.secret, f.rule, f.severity) for f in found] == [
        ("kms-secrets", "structure.unreadable", "error"),
        ("new-secrets", "structure.no-value", "warning"),
    ]


def test_structure_case_conflicts_in_keys_and_environments() -> None:
    doc = {
        **GOOD,
        "Dev": {"stripe": {"secret_key": "sk_test_x"}},
    }
    doc["dev"] = {"stripe": {"secret_key": "sk_test_d", "Secret_Key": "sk_test_e"}}
    found = [f for f in findings({"app-secrets": doc}) if f.rule == "structure.case-conflict"]
    assert len(found) == 2
    assert any(f.environment == "dev" and "'Dev'" in f.message for f in found)
    assert any(f.key == "secret_key" and "STRIPE_SECRET_KEY" in f.message for f in found)
    assert not [f for f in findings({"app-secrets": doc}) if f.rule == "integration.env-var-clash"]
    assert "structure.case-conflict" not in rules(findings({"app-secrets": GOOD}))


def test_structure_environment_name_that_cannot_be_a_branch() -> None:
    doc = {**GOOD, "my env": {"stripe": {"secret_key": "sk_test_x"}}, "feature/x-1": GOOD["dev"]}
    found = [f for f in findings({"app-secrets": doc}) if f.rule == "structure.environment-name"]
    assert [f.environment for f in found] == ["my env"]


def test_integration_env_var_clash() -> None:
    doc = json.loads(json.dumps(GOOD))
    for env in doc.values():
        env["stripe"]["secret-key"] = "sk_test_dup"
    doc["main"]["stripe"]["secret-key"] = "sk_live_dup"
    (finding,) = [
        f for f in findings({"app-secrets": doc}) if f.rule == "integration.env-var-clash"
    ]
    assert "STRIPE_SECRET_KEY" in finding.message
    assert finding.fix is not None and finding.fix.view == "secret_integration"


def test_required_environments_missing() -> None:
    doc = {"dev": GOOD["dev"], "main": GOOD["main"]}
    (finding,) = findings({"app-secrets": doc})
    assert (finding.rule, finding.environment, finding.severity) == (
        "environments.required-missing",
        "sandbox",
        "error",
    )
    relaxed = c.Policy(required_environments=("dev", "main"), value_rules=POLICY.value_rules)
    assert findings({"app-secrets": doc}, policy=relaxed) == []


def test_drift_names_the_missing_cells_and_links_the_comparison() -> None:
    doc = json.loads(json.dumps(GOOD))
    doc["dev"]["stripe"]["webhook_secret"] = "whsec_d"
    doc["sandbox"]["stripe"]["webhook_secret"] = "whsec_s"
    doc["dev"]["databricks"] = {"client_id": "x"}
    found = [f for f in findings({"app-secrets": doc}) if f.rule == "drift.missing-cells"]
    by_env = {f.environment: f for f in found}
    assert set(by_env) == {"sandbox", "main"}
    assert "lacks 2 keys" in by_env["main"].message
    assert "stripe.webhook_secret" in by_env["main"].message
    assert by_env["main"].fix == c.Fix(
        "environment_diff", ("app-secrets",), (("a", "dev"), ("b", "main")), "compare dev with main"
    )
    assert "drift.missing-cells" not in rules(findings({"app-secrets": GOOD}))


def test_value_rules_name_the_cell_never_the_value() -> None:
    doc = json.loads(json.dumps(GOOD))
    doc["dev"]["stripe"]["secret_key"] = "sk_live_CANARY-dev"
    doc["main"]["stripe"]["secret_key"] = "sk_test_CANARY-main"
    doc["sandbox"]["stripe"]["restricted"] = "rk_live_CANARY-rk"
    doc["dev"]["stripe"]["restricted"] = "not-a-key"
    doc["main"]["stripe"]["restricted"] = "rk_live_ok"
    found = [f for f in findings({"app-secrets": doc}) if f.rule.startswith("values.")]
    assert [(f.rule, f.environment, f.key) for f in found] == [
        ("values.stripe-live-key-outside-main", "dev", "secret_key"),
        ("values.stripe-live-key-outside-main", "sandbox", "restricted"),
        ("values.stripe-test-key-in-main", "main", "secret_key"),
    ]
    assert all(f.severity == "error" for f in found)
    assert "CANARY" not in repr(found)


def test_value_rules_from_settings_with_prefix_and_patterns() -> None:
    rules_ = c.value_rules(
        [{"id": "no-ghp", "prefix": "ghp_", "severity": "warning", "not_environments": ["sand*"]}]
    )
    policy = c.Policy(value_rules=tuple(rules_))
    doc = json.loads(json.dumps(GOOD))
    doc["dev"]["gh"] = {"token": "ghp_x"}
    doc["sandbox"]["gh"] = {"token": "ghp_y"}
    doc["main"]["gh"] = {"token": 5}
    found = [
        f for f in findings({"app-secrets": doc}, policy=policy) if f.rule.startswith("values.")
    ]
    assert [(f.environment, f.severity) for f in found] == [("dev", "warning")]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([{"prefix": "x"}], "needs an 'id'"),
        ([{"id": "a"}], "needs a 'prefix' or a 'regex'"),
        ([{"id": "a", "regex": "("}], "not a valid regular expression"),
        ([{"id": "a", "prefix": "x", "severity": "fatal"}], "'severity'"),
        ([{"id": "a", "prefix": "x", "environments": "main"}], "list of strings"),
        ([{"id": "a", "prefix": "x", "colour": "red"}], "unknown fields: colour"),
        ([{"id": "a", "prefix": "x"}, {"id": "a", "prefix": "y"}], "used twice"),
        (["x"], "not an object"),
    ],
)
def test_malformed_value_rules_are_refused_with_the_entry(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        c.value_rules(config)


def test_findings_are_ordered_errors_first_and_hold_no_value() -> None:
    doc = {"dev": {"stripe": {"secret_key": "sk_live_CANARY"}}}
    found = findings({"app-secrets": doc, "app-stripe-dev": None})
    assert [f.severity for f in found] == sorted(
        (f.severity for f in found), key=c.SEVERITIES.index
    )
    assert c.counts(found) == {"error": 3, "warning": 1}
    assert "CANARY" not in json.dumps([f.as_dict() for f in found])


def test_empty_values_in_protected_environments_are_reported_by_cell() -> None:
    doc = json.loads(json.dumps(GOOD))
    first_service = next(iter(doc["main"]))
    first_key = next(iter(doc["main"][first_service]))
    doc["main"][first_service][first_key] = ""
    doc["dev"][first_service][first_key] = ""  # not protected: no finding
    found = [
        f for f in findings({"app-secrets": doc}) if f.rule == "empty.in-protected-environment"
    ]
    assert [(f.environment, f.service, f.key, f.severity) for f in found] == [
        ("main", first_service, first_key, "warning")
    ]
    uat = c.Policy(value_rules=POLICY.value_rules, protected_environments=("uat", "ma*"))
    assert len(findings({"app-secrets": doc}, policy=uat)) == 1
    unprotected = c.Policy(value_rules=POLICY.value_rules, protected_environments=())
    assert findings({"app-secrets": doc}, policy=unprotected) == []
