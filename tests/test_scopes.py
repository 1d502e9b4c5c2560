"""Access scopes: the rules file, its validation, matching by name and tag, environment limits,
highest role wins, the global mapping as a rule; and the checks applied to people.

Rules are parsed through the public ``scopes`` functions; people are checked through
``permissions`` with the two-team rules of ``tests/conftest.py`` in force.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from secrets_admin import audit, notifications, permissions, scopes
from secrets_admin.models import AuditEvent, ChangeRequest
from secrets_admin.permissions import Action, Role, can
from secrets_admin.scopes import AccessRulesError, RevealPolicy

from .conftest import TEAM_A_SECRET, TEAM_B_SECRET, UNTAGGED_SECRET

TWO_TEAMS = """\
# Two teams in one AWS account.
groups = ["payments-engineers", "payments-leads", "search-engineers"]
tag_keys = ["team"]

[[rule]]
groups = ["payments-engineers"]
role = "engineer"
secrets = { tags = { team = "payments" } }

[[rule]]
groups = ["payments-leads"]
role = "approver"
secrets = { tags = { team = "payments" } }
environments = ["main"]

[[rule]]
groups = ["search-engineers"]
role = "engineer"
secrets = { names = ["search-*-secrets"] }
environments = ["sandbox", "dev"]
"""

PAYMENTS = {"team": "payments"}


def rules(text: str = TWO_TEAMS, **kwargs: Any) -> scopes.AccessRules:
    return scopes.parse_toml(text, origin="access.toml", **kwargs)


def role(groups: list[str], name: str, tags: dict[str, str], env: str | None = None) -> Role:
    return rules().scope_for(groups).role(name, tags, env)


# --------------------------------------------------------------------------------------------
# Matching


def test_tag_rule_gives_its_role_on_secrets_with_that_tag_only() -> None:
    assert role(["payments-engineers"], "billing-secrets", PAYMENTS, "dev") is Role.ENGINEER
    assert role(["payments-engineers"], "billing-secrets", {"team": "search"}) is Role.NONE
    assert role(["payments-engineers"], "billing-secrets", {"team": "Payments"}) is Role.NONE
    assert role(["payments-engineers"], "billing-secrets", {}) is Role.NONE


def test_name_pattern_rule_matches_names_not_tags() -> None:
    assert role(["search-engineers"], "search-api-secrets", {}, "dev") is Role.ENGINEER
    assert role(["search-engineers"], "searchapi-secrets", {}, "dev") is Role.NONE
    assert role(["search-engineers"], "billing-secrets", PAYMENTS, "dev") is Role.NONE


def test_rule_with_names_and_tags_needs_both_and_accepts_a_list_of_values() -> None:
    text = """\
groups = ["g"]
tag_keys = ["team", "tier"]
[[rule]]
groups = ["g"]
role = "auditor"
secrets = { names = ["pay-*"], tags = { team = ["payments", "billing"], tier = "gold" } }
"""
    scope = rules(text).scope_for(["g"])
    assert scope.role("pay-secrets", {"team": "billing", "tier": "gold"}) is Role.AUDITOR
    assert scope.role("pay-secrets", {"team": "billing"}) is Role.NONE
    assert scope.role("other-secrets", {"team": "billing", "tier": "gold"}) is Role.NONE


def test_environment_limit_gives_the_role_only_there() -> None:
    assert role(["payments-leads"], "billing-secrets", PAYMENTS, "main") is Role.APPROVER
    assert role(["payments-leads"], "billing-secrets", PAYMENTS, "dev") is Role.NONE
    assert role(["search-engineers"], "search-api-secrets", {}, "main") is Role.NONE
    # The secret exists for them (some environment is in scope).
    assert role(["payments-leads"], "billing-secrets", PAYMENTS) is Role.APPROVER


def test_highest_role_of_all_matching_rules_wins_per_cell() -> None:
    both = ["payments-engineers", "payments-leads"]
    assert role(both, "billing-secrets", PAYMENTS, "main") is Role.APPROVER
    assert role(both, "billing-secrets", PAYMENTS, "dev") is Role.ENGINEER


def test_global_mapping_is_a_rule_on_every_secret_and_environment() -> None:
    access = rules(role_groups={"sso-auditors": "auditor", "sso-approvers": "approver"})
    auditor = access.scope_for(["sso-auditors"])
    assert auditor.role("anything-secrets", {}, "main") is Role.AUDITOR
    assert auditor.unrestricted(Role.AUDITOR) and not auditor.unrestricted(Role.ENGINEER)
    mixed = access.scope_for(["sso-auditors", "payments-engineers"])
    assert mixed.role("billing-secrets", PAYMENTS, "dev") is Role.ENGINEER
    assert mixed.role("search-api-secrets", {}, "dev") is Role.AUDITOR
    # Only scoped rules' groups are remembered per person; the mapping's become portal roles.
    assert "sso-auditors" not in access.rule_groups
    assert scopes.from_role_groups({"all": "engineer"}).scope_for(["all"]).highest is Role.ENGINEER


def test_tags_are_looked_up_only_when_a_tag_rule_could_raise_the_role() -> None:
    asked: list[str] = []

    def tags() -> dict[str, str]:
        asked.append("x")
        return PAYMENTS

    access = rules(role_groups={"sso-admins": "admin"})
    assert access.scope_for(["sso-admins"]).role("x-secrets", tags, "dev") is Role.ADMIN
    assert asked == []
    assert access.scope_for(["payments-engineers"]).role("x-secrets", tags, "dev") is Role.ENGINEER
    assert asked == ["x"]


def test_summary_says_who_may_do_what_per_environment() -> None:
    summary = rules().summary(
        "billing-secrets",
        PAYMENTS,
        ["sandbox", "dev", "main"],
        is_protected=lambda env: env == "main",
    )
    assert summary == [
        ("payments-engineers", "edit sandbox, dev; propose main"),
        ("payments-leads", "approve main"),
    ]


def test_reveal_policy_per_protected_environment_defaults_to_reason() -> None:
    text = 'environments = ["dev", "main", "prod-eu"]\n[reveal]\n"prod-*" = "deny"\nmain = "approver"\n'  # fmt: skip
    access = rules(text)
    assert access.reveal_policy("main") is RevealPolicy.APPROVER
    assert access.reveal_policy("prod-eu") is RevealPolicy.DENY
    assert rules().reveal_policy("main") is RevealPolicy.REASON


# --------------------------------------------------------------------------------------------
# Validation: a start-up error naming the line, never a silently empty scope

BAD_RULE = """\
groups = ["payments-engineers"]
tag_keys = ["team"]

[[rule]]
groups = ["payments-engineers"]
role = "engineer"
secrets = {{ names = ["*"] }}

[[rule]]
# the second rule
{body}
"""


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [
        (
            'groups = ["payments-engineer"]\nrole = "engineer"\nsecrets = { names = ["*"] }',
            11,
            "group 'payments-engineer' is unknown",
        ),
        (
            'groups = ["payments-engineers"]\nrole = "enginer"\nsecrets = { names = ["*"] }',
            12,
            "role 'enginer' is unknown",
        ),
        (
            'groups = ["payments-engineers"]\nrole = "auditor"\nsecrets = { tags = { tem = "x" } }',
            13,
            "tag key 'tem' is unknown",
        ),
        (
            'groups = ["payments-engineers"]\nrole = "auditor"\nsecrets = { names = ["*"] }\n'
            'environments = ["prod"]',
            14,
            "environment pattern 'prod' matches none",
        ),
        (
            'groups = ["payments-engineers"]\nrole = "auditor"\nsecret = { names = ["*"] }',
            13,
            "unknown key 'secret'",
        ),
        ('groups = ["payments-engineers"]\nrole = "auditor"', 9, "secrets is required"),
        (
            'groups = ["payments-engineers"]\nrole = "auditor"\nsecrets = { names = [] }',
            13,
            "secrets chooses nothing",
        ),
    ],
)
def test_invalid_rule_is_an_error_naming_its_line(body: str, line: int, says: str) -> None:
    with pytest.raises(AccessRulesError) as caught:
        rules(BAD_RULE.format(body=body))
    message = str(caught.value)
    assert message.startswith(f"access.toml line {line}: rule 2: "), message
    assert says in message


def test_toml_syntax_error_names_tomllibs_line() -> None:
    with pytest.raises(AccessRulesError, match=r"access.toml: not valid TOML: .*line 3"):
        rules('groups = ["a"]\n\n[[rule]\n')


def test_unknown_top_level_setting_names_its_line() -> None:
    with pytest.raises(AccessRulesError, match=r"access.toml line 2: unknown setting 'group'"):
        rules('tag_keys = ["team"]\ngroup = ["a"]\n')


def test_json_rules_name_the_rule_by_number() -> None:
    text = '{"groups": ["g"], "rule": [{"groups": ["g"], "role": "engineer", "secrets": {"names": ["*"]}}, {"groups": ["h"], "role": "engineer", "secrets": {"names": ["*"]}}]}'  # fmt: skip
    with pytest.raises(AccessRulesError, match=r"^PORTAL_ACCESS_RULES: rule 2: group 'h'"):
        scopes.parse_json(text, origin="PORTAL_ACCESS_RULES")
    with pytest.raises(AccessRulesError, match="must be a JSON object"):
        scopes.parse_json("[]", origin="PORTAL_ACCESS_RULES")


def test_file_and_variable_together_or_an_unreadable_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AccessRulesError, match="not both"):
        scopes.load(file=str(tmp_path / "a.toml"), rules_json="{}", role_groups={})
    with pytest.raises(AccessRulesError, match=r"a.toml: cannot be read"):
        scopes.load(file=str(tmp_path / "a.toml"), rules_json="", role_groups={})


def test_invalid_access_file_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    access_file = tmp_path / "access.toml"
    access_file.write_text(BAD_RULE.format(body='groups = ["nobody"]\nrole = "engineer"'))
    env = {**os.environ, "PORTAL_TESTING": "1", "PORTAL_ACCESS_FILE": str(access_file)}
    env.pop("PORTAL_ACCESS_RULES", None)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert f"PORTAL_ACCESS_FILE {access_file} line 11: rule 2: group 'nobody' is unknown" in (
        done.stderr
    )


# --------------------------------------------------------------------------------------------
# People: scoped personas against a team-A, a team-B and an untagged secret


@pytest.mark.django_db
def test_team_engineer_may_act_only_on_their_teams_secret(
    team_secrets: Any, team_a_engineer: Any
) -> None:
    assert can(team_a_engineer, Action.VIEW)  # "at all": the navigation shows the portal
    assert can(team_a_engineer, Action.REVEAL, TEAM_A_SECRET, "dev")
    assert can(team_a_engineer, Action.EDIT, TEAM_A_SECRET, "dev")
    assert not can(team_a_engineer, Action.APPROVE, TEAM_A_SECRET, "main")
    for other in (TEAM_B_SECRET, UNTAGGED_SECRET, "unknown-secrets"):
        assert not can(team_a_engineer, Action.VIEW, other)
        assert not can(team_a_engineer, Action.REVEAL, other, "dev")


@pytest.mark.django_db
def test_list_filter_keeps_only_secrets_in_scope(
    team_secrets: Any, team_a_auditor: Any, engineer: Any, outsider: Any
) -> None:
    from secrets_admin import listing

    entries = listing.get_listing().secrets
    assert [m.name for m in permissions.visible_secrets(team_a_auditor, entries)] == [TEAM_A_SECRET]
    assert permissions.visible_secrets(team_a_auditor, list(team_secrets)) == [TEAM_A_SECRET]
    assert permissions.visible_secrets(engineer, list(team_secrets)) == list(team_secrets)
    assert permissions.visible_secrets(outsider, list(team_secrets)) == []


@pytest.mark.django_db
def test_global_persona_checks_need_no_listing(team_rules: Any, engineer: Any, sm: Any) -> None:
    # No secret exists and nothing was listed: a global role answers without tags.
    assert can(engineer, Action.EDIT, "never-listed-secrets", "dev")
    assert not can(engineer, Action.APPROVE, "never-listed-secrets", "main")


@pytest.mark.django_db
def test_idp_groups_are_remembered_only_when_a_rule_names_them(
    team_rules: Any, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user(username="pat")
    kept = permissions.set_idp_groups(user, ["team-a-leads", "wiki-editors", "team-b-engineers"])
    assert kept == ["team-a-leads", "team-b-engineers"]
    assert set(user.groups.values_list("name", flat=True)) == {
        "idp:team-a-leads",
        "idp:team-b-engineers",
    }
    permissions.set_idp_groups(user, ["team-a-auditors"])
    assert set(user.groups.values_list("name", flat=True)) == {"idp:team-a-auditors"}
    assert permissions.role_for(user) is Role.AUDITOR


@pytest.mark.django_db
def test_tags_changed_in_aws_change_scope_at_the_next_listing_refresh(
    team_secrets: Any, team_a_engineer: Any, sm: Any
) -> None:
    from secrets_admin import listing

    listing.get_listing()
    sm.tag_resource(SecretId=UNTAGGED_SECRET, Tags=[{"Key": "team", "Value": "team-a"}])
    assert not can(team_a_engineer, Action.VIEW, UNTAGGED_SECRET)  # the cached listing
    listing.get_listing(refresh=True)
    assert can(team_a_engineer, Action.VIEW, UNTAGGED_SECRET)


@pytest.mark.django_db
def test_a_secret_the_portal_creates_with_a_teams_tag_opens_for_that_team_at_once(
    team_secrets: Any, team_a_engineer: Any, admin: Any, client: Any
) -> None:
    from django.urls import reverse

    from secrets_admin.changes import lifecycle

    client.force_login(team_a_engineer)
    assert (
        client.get(reverse("secrets_admin:secret_detail", args=[TEAM_A_SECRET])).status_code == 200
    )
    lifecycle.secret_create(
        repo="alpha-two",
        environments=["dev"],
        tags={"team": "team-a"},
        context=audit.Context(user=admin),
    )
    listed = client.get(reverse("secrets_admin:secret_list")).content.decode()
    assert "alpha-two-secrets" in listed  # the listing's write-through lists it ...
    grid = client.get(reverse("secrets_admin:secret_detail", args=["alpha-two-secrets"]))
    assert grid.status_code == 200  # ... and the scope check reads the same listing
    assert can(team_a_engineer, Action.EDIT, "alpha-two-secrets", "dev")


@pytest.mark.django_db
def test_protected_reveal_follows_the_reveal_policy(
    settings: Any, team_secrets: Any, engineer: Any, approver: Any
) -> None:
    assert permissions.reveal_policy("dev") is None
    assert permissions.reveal_policy("main") is RevealPolicy.REASON
    assert permissions.reveal_needs_reason("main") and not permissions.reveal_needs_reason("dev")
    assert can(engineer, Action.REVEAL, TEAM_A_SECRET, "main")

    settings.PORTAL_ACCESS_RULES = '{"reveal": {"main": "approver"}}'
    assert not can(engineer, Action.REVEAL, TEAM_A_SECRET, "main")
    assert can(engineer, Action.REVEAL, TEAM_A_SECRET, "dev")
    assert can(approver, Action.REVEAL, TEAM_A_SECRET, "main")

    settings.PORTAL_ACCESS_RULES = '{"reveal": {"main": "deny"}}'
    assert not can(approver, Action.REVEAL, TEAM_A_SECRET, "main")
    assert not permissions.reveal_needs_reason("main")


@pytest.mark.django_db
def test_request_needs_approvers_whose_scope_covers_every_environment(
    settings: Any, team_secrets: Any, django_user_model: Any, approver: Any
) -> None:
    settings.PORTAL_ACCESS_RULES = """{
        "groups": ["a-leads", "a-main-leads"], "tag_keys": ["team"],
        "rule": [
          {"groups": ["a-leads"], "role": "approver", "secrets": {"tags": {"team": "team-a"}}},
          {"groups": ["a-main-leads"], "role": "approver", "secrets": {"tags": {"team": "team-a"}},
           "environments": ["main"]}]}"""
    lead = django_user_model.objects.create_user(username="lead")
    permissions.set_idp_groups(lead, ["a-leads"])
    main_lead = django_user_model.objects.create_user(username="main-lead")
    permissions.set_idp_groups(main_lead, ["a-main-leads"])

    assert permissions.may_approve(main_lead, TEAM_A_SECRET, ["main"])
    assert not permissions.may_approve(main_lead, TEAM_A_SECRET, ["main", "uat"])
    assert permissions.may_approve(lead, TEAM_A_SECRET, ["main", "uat"])
    assert not permissions.may_approve(lead, TEAM_B_SECRET, ["main"])
    assert permissions.approvers_for(TEAM_A_SECRET, ["main", "uat"]) == [approver, lead]
    assert permissions.approvers_for(TEAM_B_SECRET, ["main"]) == [approver]


@pytest.mark.django_db
def test_request_email_goes_only_to_approvers_in_scope(
    team_secrets: Any, team_a_approver: Any, approver: Any, team_a_engineer: Any
) -> None:
    approver.email = "alex@example.test"
    approver.save()
    opened = []
    for secret in (TEAM_A_SECRET, TEAM_B_SECRET):
        opened.append(
            ChangeRequest.objects.create(
                secret=secret,
                environments=["main"],
                base_version="v1",
                change_id=f"c-{secret}",
                author=team_a_engineer,
                author_username=team_a_engineer.username,
                expires_at=timezone.now() + timedelta(days=1),
            )
        )
    for cr in opened:
        notifications.request_opened(cr)

    to_a, to_b = (sorted(m.to) for m in mail.outbox)
    assert to_a == ["alex@example.test", team_a_approver.email]
    assert to_b == ["alex@example.test"]
    assert not any(TEAM_B_SECRET in m.body + m.subject for m in mail.outbox if m.to != to_b)


@pytest.mark.django_db
def test_audit_rows_are_filtered_to_the_scope(
    team_secrets: Any, team_a_auditor: Any, auditor: Any
) -> None:
    for secret in team_secrets:
        audit.record(audit.AuditAction.REVEAL, secret=secret, environment="dev")
    audit.record(audit.AuditAction.SIGN_IN, context=audit.Context(user=team_a_auditor))
    audit.record(audit.AuditAction.SIGN_IN)  # someone else's sign-in

    from django.db.models import Q

    mine = permissions.visible_rows(
        team_a_auditor, AuditEvent.objects.all(), also=Q(secret="", actor=team_a_auditor)
    )
    assert [(e.action, e.secret) for e in mine] == [
        ("reveal", TEAM_A_SECRET),
        ("sign_in", ""),
    ]
    assert permissions.visible_rows(auditor, AuditEvent.objects.all()).count() == 5


@pytest.mark.django_db
def test_secret_page_summary_names_groups_and_verbs(team_secrets: Any, team_rules: Any) -> None:
    summary = permissions.access_summary(TEAM_A_SECRET, ["sandbox", "dev", "main"])
    assert summary == [
        ("team-a-auditors", "view sandbox, dev, main"),
        ("team-a-engineers", "edit sandbox, dev; propose main"),
        ("team-a-leads", "edit sandbox, dev; approve main"),
    ]
    assert permissions.access_summary(UNTAGGED_SECRET, ["dev"]) == []


@pytest.mark.django_db
def test_sso_sign_in_remembers_the_groups_rules_name_at_every_sign_in(
    sso: Any, client: Any, team_secrets: Any, settings: Any
) -> None:
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from .conftest import SSO_PROVIDER_ID, TEAM_RULES
    from .idp_harness import django_client_transport, oidc_login

    settings.PORTAL_ACCESS_RULES = json.dumps(TEAM_RULES)
    start = f"http://testserver/accounts/oidc/{SSO_PROVIDER_ID}/login/"
    sso.set_users({"tara": {"email": "tara@example.test", "groups": ["team-a-engineers", "wiki"]}})
    oidc_login(django_client_transport(client), start, "tara")
    user = get_user_model().objects.get(pk=client.session["_auth_user_id"])
    assert set(user.groups.values_list("name", flat=True)) == {"idp:team-a-engineers"}
    signed_in = AuditEvent.objects.filter(action="sign_in").last()
    assert signed_in is not None
    assert signed_in.detail == {"method": "sso", "role": "engineer", "groups": ["team-a-engineers"]}
    assert can(user, Action.EDIT, TEAM_A_SECRET, "dev")
    assert not can(user, Action.VIEW, TEAM_B_SECRET)

    client.post(reverse("account_logout"))
    sso.set_users({"tara": {"email": "tara@example.test", "groups": ["team-b-engineers"]}})
    oidc_login(django_client_transport(client), start, "tara")
    user = get_user_model().objects.get(pk=user.pk)
    assert set(user.groups.values_list("name", flat=True)) == {"idp:team-b-engineers"}
    assert not can(user, Action.VIEW, TEAM_A_SECRET)
    assert can(user, Action.EDIT, TEAM_B_SECRET, "dev")


@pytest.mark.django_db
def test_compliance_report_for_a_scoped_person_holds_only_their_secrets(
    team_secrets: Any, make_secret: Any, team_a_auditor: Any, auditor: Any
) -> None:
    from secrets_admin import lint

    make_secret("alpha-stripe-main", {"k": "v"}, Tags=[{"Key": "team", "Value": "team-a"}])
    make_secret("bravo-stripe-main", {"k": "v"}, Tags=[{"Key": "team", "Value": "team-a"}])
    report = lint.run(use_cache=False)
    assert {f.secret for f in report.findings} >= {TEAM_B_SECRET, "bravo-stripe-main"}

    mine = lint.for_user(report, team_a_auditor)
    assert {f.secret for f in mine.findings} == {TEAM_A_SECRET, "alpha-stripe-main"}
    assert "bravo" not in repr(mine.findings)  # a legacy secret of B's unified secret too
    # bravo-stripe-main is team A's by its tag: counted, but its finding names B's secret.
    assert (mine.secrets_listed, mine.unified, mine.values_read) == (3, 1, 1)
    assert lint.for_user(report, auditor) is report


def test_readme_worked_example_parses_and_gives_what_its_table_says() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Access rules", 1)[1]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    access = scopes.parse_toml(text, origin="README")
    summary = dict(
        access.summary(
            "payments-api-secrets",
            PAYMENTS,
            ["sandbox", "dev", "uat", "main"],
            is_protected=lambda env: env == "main",
        )
    )
    assert summary == {
        "payments-engineers": "edit sandbox, dev, uat; propose main",
        "payments-leads": "approve main",
        "security": "view sandbox, dev, uat, main",
    }
    assert access.scope_for(["payments-engineers"]).role("search-indexer-secrets", {}) is Role.NONE
    assert access.scope_for(["security"]).role("hr-secrets", {}, "main") is Role.AUDITOR
    assert access.reveal_policy("main") is RevealPolicy.REASON


@pytest.mark.django_db
def test_account_wide_administration_needs_a_global_admin(
    settings: Any, team_secrets: Any, django_user_model: Any, admin: Any
) -> None:
    settings.PORTAL_ACCESS_RULES = json.dumps(
        {
            "groups": ["a-admins"],
            "tag_keys": ["team"],
            "rule": [
                {"groups": ["a-admins"], "role": "admin", "secrets": {"tags": {"team": "team-a"}}}
            ],
        }
    )
    scoped_admin = django_user_model.objects.create_user(username="sam")
    permissions.set_idp_groups(scoped_admin, ["a-admins"])
    admin_action = next(a for a, r in permissions.MINIMUM_ROLE.items() if r is Role.ADMIN)

    assert permissions.role_for(scoped_admin) is Role.ADMIN
    assert can(scoped_admin, admin_action, TEAM_A_SECRET)
    assert not can(scoped_admin, admin_action, TEAM_B_SECRET)
    assert not can(scoped_admin, admin_action)  # creating or migrating: account-wide
    assert can(admin, admin_action)
