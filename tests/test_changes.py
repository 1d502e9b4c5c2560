"""The write use cases against the moto server: compare-and-swap saves, conflicts, rebases,
idempotency, limits, protected environments, restores, creation."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from secrets_admin import audit, audit_verify, aws, changesets, documents, errors, reads
from secrets_admin.changes import editor, lifecycle, protocol
from secrets_admin.changes import restore as restoring
from secrets_admin.changesets import Edit
from secrets_admin.models import AuditEvent, ChangeRequest, SecretSummary

from .conftest import STANDARD_DOC, CallCounter
from .test_aws import inject_error

pytestmark = pytest.mark.django_db

NAME = "a-secrets"
# Untouched leaves of every JSON type, exact number texts and a deliberate key order.
ODD_TEXT = (
    '{"main":{"s":{"z":1.10,"a":1e400,"big":123456789012345678901234567890}},'
    '"dev":{"s":{"flag":true,"none":null,"nested":{"b":[1,"x",{"c":-0}]},"k":"old"},'
    '"t":{"only":"x"}}}'
)


@pytest.fixture
def ctx(engineer: Any) -> audit.Context:
    return audit.Context(user=engineer, client_ip="127.0.0.1", user_agent="pytest")


def current_doc(name: str = NAME) -> Any:
    return documents.parse(aws.read_current(name).text or "")


def staging_labels(sm: Any, name: str = NAME) -> list[str]:
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    return [v for v, labels in stages.items() if aws.STAGING_LABEL in labels]


def request_body(params: Any) -> dict[str, Any]:
    """The JSON parameters of a request seen by a ``before-call`` hook."""
    body = params["body"]
    return dict(json.loads(body)) if body else {}


def save(ctx: audit.Context, base: str, *edits: Edit, change_id: str | None = None) -> Any:
    return editor.secret_save_changes(
        name=NAME,
        base_version_id=base,
        changeset=list(edits),
        context=ctx,
        change_id=change_id
        or protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base),
    )


def test_save_lands_one_new_current_version_and_records_fingerprints(
    make_secret: Any, ctx: audit.Context, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    result = save(ctx, base, Edit("set", "dev", "stripe", "secret_key", "sk_test_NEW-CANARY"))
    current = aws.read_current(NAME)
    assert current.version_id == result.new_version_id != base
    assert documents.parse(current.text or "")["dev"]["stripe"]["secret_key"] == (
        "sk_test_NEW-CANARY"
    )
    assert [(c.environment, c.key, c.status) for c in result.cells] == [
        ("dev", "secret_key", "changed")
    ]
    assert staging_labels(sm) == []
    actions = list(AuditEvent.objects.values_list("action", "outcome"))
    assert actions == [("save", "attempted"), ("save", "succeeded")]
    event = AuditEvent.objects.get(action="save", outcome="succeeded")
    assert (event.base_version, event.new_version, event.environment) == (
        base,
        result.new_version_id,
        "dev",
    )
    (cell,) = event.detail["cells"]
    assert cell["before"] == result.cells[0].before.fingerprint
    assert cell["after"] == result.cells[0].after.fingerprint != cell["before"]
    assert len(cell["after"]) == 64
    assert "CANARY" not in json.dumps(list(AuditEvent.objects.values()), default=str)
    assert SecretSummary.objects.get(name=NAME).version_id == result.new_version_id
    assert audit_verify.verify().ok


def test_one_save_costs_get_put_and_two_stage_moves(
    make_secret: Any, ctx: audit.Context, calls: CallCounter
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    calls.calls.clear()
    save(ctx, base, Edit("set", "dev", "stripe", "public_key", "pk_new"))
    assert calls.calls == [
        "GetSecretValue",  # the base, by VersionId
        "PutSecretValue",  # stage with the temporary label
        "UpdateSecretVersionStage",  # swap AWSCURRENT (RemoveFromVersionId = base)
        "UpdateSecretVersionStage",  # drop the temporary label
    ]


def test_a_conflict_costs_describe_drop_and_a_read_and_a_rebase_three_more_writes(
    make_secret: Any, ctx: audit.Context, calls: CallCounter
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("set", "dev", "stripe", "secret_key", "theirs"))
    calls.calls.clear()
    save(ctx, base, Edit("set", "dev", "stripe", "public_key", "mine"))  # other cell: rebase
    assert calls.calls == [
        "GetSecretValue",  # base
        "PutSecretValue",
        "UpdateSecretVersionStage",  # swap refused: AWSCURRENT moved
        "DescribeSecret",  # decides: someone else saved
        "UpdateSecretVersionStage",  # drop the label of the version that did not land
        "GetSecretValue",  # current, to compare and rebase onto
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "UpdateSecretVersionStage",
    ]


def test_save_updates_its_listing_entry_without_listing_the_account(
    make_secret: Any, ctx: audit.Context, calls: Any
) -> None:
    from django.core.cache import cache

    from secrets_admin import listing

    make_secret(NAME, STANDARD_DOC)
    listing.get_listing()
    fresh_until = cache.get(listing.STAMP_KEY).fresh_until
    calls.calls.clear()
    result = save(
        ctx, aws.read_current(NAME).version_id, Edit("set", "dev", "stripe", "public_key", "x")
    )
    assert "ListSecrets" not in calls.calls
    entry = next(m for m in listing.get_listing().secrets if m.name == NAME)
    assert entry.current_version == result.new_version_id
    assert cache.get(listing.STAMP_KEY).fresh_until == fresh_until > time.time()  # not stale


def test_versions_are_listed_across_pages(make_secret: Any) -> None:
    """moto returns every version in one page, so the pages are served here (botocore hook)."""
    make_secret(NAME, STANDARD_DOC)
    pages = {
        "": {"Versions": [{"VersionId": f"v{i:03d}"} for i in range(100)], "NextToken": "p2"},
        "p2": {"Versions": [{"VersionId": "v100"}, {"VersionId": "v101"}]},
    }
    seen: list[dict[str, Any]] = []

    def paged(model: Any, params: Any, **kwargs: Any) -> Any:
        if model.name != "ListSecretVersionIds":
            return None
        body = request_body(params)
        seen.append(body)
        http = AWSResponse("https://example.invalid", 200, {}, None)
        return http, {**pages[body.get("NextToken", "")], "ResponseMetadata": {}}

    aws.client().meta.events.register("before-call.secrets-manager", paged)
    versions = aws.list_versions(NAME)
    assert len(versions) == 102
    assert all(b["IncludeDeprecated"] is True for b in seen) and len(seen) == 2


def test_untouched_values_types_and_key_order_survive_byte_exactly(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, ODD_TEXT)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("set", "dev", "s", "k", "new"), Edit("set", "dev", "s", "added", "1"))
    assert aws.read_current(NAME).text == ODD_TEXT.replace('"k":"old"', '"k":"new","added":"1"')


def test_a_newly_typed_value_is_a_string(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, ODD_TEXT)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("set", "dev", "s", "flag", "false"))
    assert current_doc()["dev"]["s"]["flag"] == "false"


def test_protected_environment_is_never_saved_directly(
    make_secret: Any, ctx: audit.Context, calls: CallCounter
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    calls.calls.clear()
    result = save(
        ctx,
        base,
        Edit("set", "dev", "stripe", "public_key", "x"),
        Edit("set", "main", "stripe", "public_key", "x"),
    )
    assert isinstance(result, ChangeRequest) and result.environments == ["dev", "main"]
    assert calls.count("UpdateSecretVersionStage") == 0  # AWSCURRENT never moved
    assert aws.read_current(NAME).version_id == base
    assert not AuditEvent.objects.filter(action=audit.AuditAction.SAVE).exists()


def test_protected_patterns_are_honoured(
    make_secret: Any, ctx: audit.Context, settings: Any
) -> None:
    settings.PORTAL_PROTECTED_ENVIRONMENTS = ["main", "prod*"]
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    result = save(ctx, base, Edit("add_environment", "prod-eu"))
    assert isinstance(result, ChangeRequest) and result.environments == ["prod-eu"]
    assert aws.read_current(NAME).version_id == base


def test_oversize_document_is_refused_before_any_write(
    make_secret: Any, ctx: audit.Context, calls: CallCounter
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    calls.calls.clear()
    with pytest.raises(aws.SecretTooLarge) as info:
        save(ctx, base, Edit("set", "dev", "big", "blob", "é" * 33_000))
    assert calls.calls == ["GetSecretValue"]  # the base read; no write
    size = len(
        documents.serialise(
            changesets.apply(STANDARD_DOC, [Edit("set", "dev", "big", "blob", "é" * 33_000)])
        ).encode()
    )
    assert f"{size - 65_536:,} bytes over" in info.value.message
    assert not AuditEvent.objects.exists()


def test_stage_checks_the_size_before_calling_aws(calls: CallCounter) -> None:
    with pytest.raises(aws.SecretTooLarge, match="1 bytes over"):
        aws.stage_version(NAME, text="x" * 65_537, token="t" * 36)
    assert calls.calls == []
    assert aws.check_size("x" * 65_536) == 65_536


def test_no_effective_change_saves_nothing(
    make_secret: Any, ctx: audit.Context, calls: CallCounter
) -> None:
    make_secret(NAME, json.dumps(STANDARD_DOC, indent=2))  # formatting alone is not a change
    base = aws.read_current(NAME).version_id
    calls.calls.clear()
    with pytest.raises(errors.NoChanges, match="No changes"):
        save(ctx, base, Edit("set", "dev", "stripe", "public_key", "pk_test_dev"))
    assert calls.calls == ["GetSecretValue"]
    assert len(aws.list_versions(NAME)) == 1


def test_double_submit_of_one_change_creates_one_version(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    edit = Edit("set", "dev", "stripe", "public_key", "pk_once")
    change_id = protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base)
    first = save(ctx, base, edit, change_id=change_id)
    second = save(ctx, base, edit, change_id=change_id)
    assert second.already_saved and second.new_version_id == first.new_version_id
    assert len(aws.list_versions(NAME)) == 2
    assert AuditEvent.objects.filter(action="save", outcome="succeeded").count() == 1


def test_repeat_unknown_to_the_audit_log_is_confirmed_by_describe_secret(
    make_secret: Any, ctx: audit.Context, sm: Any, calls: CallCounter
) -> None:
    """A repeat whose first run landed but left no outcome (e.g. a crash): the same token makes
    PutSecretValue a no-op, the swap fails, and DescribeSecret finds AWSCURRENT on it."""
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME)
    edit = Edit("set", "dev", "stripe", "public_key", "pk_once")
    # The first run, by hand: staged with the change's token and made current, no audit outcome.
    change_id = protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base.version_id)
    nonce = protocol.open_change_id(
        change_id, context=ctx, name=NAME, base_version_id=base.version_id
    )
    landed = sm.put_secret_value(
        SecretId=NAME,
        ClientRequestToken=protocol.request_token(
            NAME, nonce, base.version_id, protocol.changeset_digest([edit])
        ),
        SecretString=documents.serialise(
            changesets.apply(documents.parse(base.text or ""), [edit])
        ),
        VersionStages=[aws.STAGING_LABEL],
    )["VersionId"]
    sm.update_secret_version_stage(
        SecretId=NAME,
        VersionStage="AWSCURRENT",
        MoveToVersionId=landed,
        RemoveFromVersionId=base.version_id,
    )
    calls.calls.clear()
    second = save(ctx, base.version_id, edit, change_id=change_id)
    assert second.new_version_id == landed
    assert "DescribeSecret" in calls.calls
    assert len(aws.list_versions(NAME)) == 2


def test_swap_that_landed_but_answered_an_error_counts_as_success(
    make_secret: Any, ctx: audit.Context, sm: Any
) -> None:
    """An ambiguous failure: the swap reached AWS, the answer was lost (here: replaced by an
    error after the real call). DescribeSecret decides it landed."""
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id

    def land_then_fail(model: Any, params: Any, **kwargs: Any) -> Any:
        body = request_body(params)
        if model.name != "UpdateSecretVersionStage" or body.get("VersionStage") != "AWSCURRENT":
            return None
        sm.update_secret_version_stage(**body)
        http = AWSResponse("https://example.invalid", 500, {}, None)
        return http, {"Error": {"Code": "InternalServiceError", "Message": "lost"}}

    aws.client().meta.events.register("before-call.secrets-manager", land_then_fail)
    result = save(ctx, base, Edit("set", "dev", "stripe", "public_key", "pk_x"))
    assert aws.read_current(NAME).version_id == result.new_version_id
    assert AuditEvent.objects.filter(action="save", outcome="succeeded").count() == 1


def test_concurrent_edit_of_the_same_cell_is_a_conflict_with_three_fingerprints(
    make_secret: Any, ctx: audit.Context, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    theirs = save(ctx, base, Edit("set", "dev", "stripe", "secret_key", "theirs"))
    with pytest.raises(errors.Conflict) as info:
        save(ctx, base, Edit("set", "dev", "stripe", "secret_key", "yours"))
    conflict = info.value
    (cell,) = conflict.cells
    assert (cell.environment, cell.service, cell.key) == ("dev", "stripe", "secret_key")
    fp = reads.fingerprint
    assert cell.base.fingerprint == fp("sk_test_dev")
    assert cell.theirs.fingerprint == fp("theirs")
    assert cell.yours.fingerprint == fp("yours")
    assert conflict.current_version_id == theirs.new_version_id
    assert conflict.base_version_id == base
    # Theirs stays current; yours exists only as a staged, never-current version to compare.
    assert aws.read_current(NAME).version_id == theirs.new_version_id
    yours = documents.parse(aws.read_version(NAME, conflict.yours_version_id).text or "")
    assert yours["dev"]["stripe"]["secret_key"] == "yours"
    assert staging_labels(sm) == []
    event = AuditEvent.objects.get(action="save", outcome="conflicted")
    assert event.detail["conflicts"] == [
        {"environment": "dev", "service": "stripe", "key": "secret_key"}
    ]


def test_save_rebases_when_other_cells_changed(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("set", "dev", "stripe", "secret_key", "theirs"))
    result = save(
        ctx,
        base,
        Edit("set", "dev", "databricks", "client_id", "yours"),
        Edit("add_service", "sandbox", "new"),
    )
    assert result.rebased == 1
    doc = current_doc()
    assert doc["dev"]["stripe"]["secret_key"] == "theirs"
    assert doc["dev"]["databricks"]["client_id"] == "yours"
    assert doc["sandbox"]["new"] == {}


def test_save_rebases_when_other_environment_changed(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("remove_environment", "sandbox"))
    save(ctx, base, Edit("delete", "dev", "stripe", "public_key"))
    doc = current_doc()
    assert "sandbox" not in doc and "public_key" not in doc["dev"]["stripe"]


def test_writing_into_a_service_someone_removed_is_a_conflict(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    save(ctx, base, Edit("remove_service", "dev", "databricks"))
    with pytest.raises(errors.Conflict) as info:
        save(ctx, base, Edit("set", "dev", "databricks", "new_key", "v"))
    assert ("dev", "databricks", "") in [
        (c.environment, c.service, c.key) for c in info.value.cells
    ]


def test_same_change_made_by_someone_else_lands_as_already_in_place(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    theirs = save(ctx, base, Edit("delete", "dev", "stripe", "public_key"))
    mine = save(ctx, base, Edit("delete", "dev", "stripe", "public_key"))
    assert mine.already_saved and mine.new_version_id == theirs.new_version_id
    assert len(aws.list_versions(NAME)) == 3  # initial, theirs, my staged (never current)


def test_rebases_are_bounded(make_secret: Any, ctx: audit.Context, sm: Any) -> None:
    """Someone saves between every stage and swap: after MAX_REBASES rebases the save gives up
    with nothing of it landed."""
    make_secret(NAME, {"dev": {"s": {"n": "0"}}})
    base = aws.read_current(NAME).version_id
    other = iter(range(100))

    def interfere(model: Any, params: Any, **kwargs: Any) -> None:
        body = request_body(params)
        if model.name == "UpdateSecretVersionStage" and body.get("VersionStage") == "AWSCURRENT":
            cur = sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")
            doc = json.loads(cur["SecretString"])
            doc["dev"]["s"][f"other{next(other)}"] = "x"
            token = f"{next(other):036d}"
            sm.put_secret_value(
                SecretId=NAME,
                SecretString=json.dumps(doc),
                VersionStages=["OTHER"],
                ClientRequestToken=token,
            )
            sm.update_secret_version_stage(
                SecretId=NAME,
                VersionStage="AWSCURRENT",
                MoveToVersionId=token,
                RemoveFromVersionId=cur["VersionId"],
            )

    aws.client().meta.events.register("before-call.secrets-manager", interfere)
    with pytest.raises(errors.SaveContended, match="Re-apply"):
        save(ctx, base, Edit("set", "dev", "s", "mine", "v"))
    assert "mine" not in current_doc()["dev"]["s"]
    assert (
        AuditEvent.objects.filter(
            action="save", outcome="failed", error_code="SaveContended"
        ).count()
        == 1
    )
    assert staging_labels(sm) == []


def test_aws_failure_while_staging_is_a_sentence_and_recorded(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    inject_error("PutSecretValue", "LimitExceededException")
    with pytest.raises(aws.LimitExceeded, match="about 100 versions"):
        save(ctx, base, Edit("set", "dev", "stripe", "public_key", "x"))
    assert (
        AuditEvent.objects.get(action="save", outcome="failed").error_code
        == "LimitExceededException"
    )


def test_failed_swap_still_drops_the_temporary_label(
    make_secret: Any, ctx: audit.Context, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id

    def deny_swap(model: Any, params: Any, **kwargs: Any) -> Any:
        body = request_body(params)
        if model.name == "UpdateSecretVersionStage" and body.get("VersionStage") == "AWSCURRENT":
            http = AWSResponse("https://example.invalid", 400, {}, None)
            return http, {"Error": {"Code": "AccessDeniedException", "Message": "no"}}
        return None

    aws.client().meta.events.register("before-call.secrets-manager", deny_swap)
    with pytest.raises(aws.AccessDenied, match="UpdateSecretVersionStage"):
        save(ctx, base, Edit("set", "dev", "stripe", "public_key", "x"))
    assert staging_labels(sm) == []
    assert aws.read_current(NAME).version_id == base


def test_nothing_is_written_when_the_audit_log_is_down(
    make_secret: Any, ctx: audit.Context, monkeypatch: Any, calls: CallCounter
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(AuditEvent, "save", broken_save)
    calls.calls.clear()
    with pytest.raises(audit.AuditUnavailable):
        save(ctx, base, Edit("set", "dev", "stripe", "public_key", "x"))
    assert calls.calls == ["GetSecretValue"]
    assert aws.read_current(NAME).version_id == base


def test_a_landed_save_whose_outcome_cannot_be_recorded_says_so(
    make_secret: Any, ctx: audit.Context, monkeypatch: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    real = audit._append

    def append(action: str, outcome: str, *args: Any, **kwargs: Any) -> Any:
        if action == "save" and outcome == "succeeded":
            raise audit.AuditUnavailable()
        return real(action, outcome, *args, **kwargs)

    monkeypatch.setattr(audit, "_append", append)
    with pytest.raises(errors.SavedUnrecorded) as info:
        save(ctx, base, Edit("set", "dev", "stripe", "public_key", "x"))
    assert info.value.version_id == aws.read_current(NAME).version_id != base
    assert "attempt is recorded" in info.value.message


def test_edits_keep_values_out_of_their_repr() -> None:
    assert "CANARY" not in repr(Edit("set", "dev", "s", "k", "CANARY-repr"))
    assert "CANARY" not in repr(editor.EditIntent(values={("dev", "s", "k"): "CANARY-repr"}))


@pytest.mark.parametrize(
    "value", ["DATABASE_URL=x", '{"dev": "flat"}', "[1]"], ids=["dotenv", "flat", "array"]
)
def test_non_conforming_secret_is_never_rewritten(
    make_secret: Any, ctx: audit.Context, value: str
) -> None:
    make_secret(NAME, value)
    base = aws.read_current(NAME).version_id
    with pytest.raises(errors.NotEditable, match="will not rewrite"):
        save(ctx, base, Edit("set", "dev", "s", "k", "v"))
    assert len(aws.list_versions(NAME)) == 1


def test_impossible_edit_is_refused_with_its_reason(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, STANDARD_DOC)
    base = aws.read_current(NAME).version_id
    with pytest.raises(errors.InvalidChange, match="leading or trailing"):
        save(ctx, base, Edit("set", "dev", "stripe", "bad ", "v"))


def test_token_is_derived_from_change_and_base() -> None:
    t = protocol.request_token(NAME, "c" * 32, "base-1")
    assert t == protocol.request_token(NAME, "c" * 32, "base-1")
    assert t != protocol.request_token(NAME, "c" * 32, "base-2")
    assert t != protocol.request_token("b-secrets", "c" * 32, "base-1")
    assert 32 <= len(t) <= 64


def test_same_token_with_other_content_is_refused(make_secret: Any) -> None:
    make_secret(NAME, STANDARD_DOC)
    aws.stage_version(NAME, text='{"dev":{}}', token="e" * 36)
    with pytest.raises(aws.TokenReused, match="already submitted"):
        aws.stage_version(NAME, text='{"main":{}}', token="e" * 36)


# ----------------------------------------------------------------------------------------
# Restore one environment


def restore(ctx: audit.Context, environment: str, version: str, base: str) -> Any:
    return restoring.secret_restore_environment(
        name=NAME,
        environment=environment,
        version_id=version,
        base_version_id=base,
        context=ctx,
        change_id=protocol.new_change_id(user=ctx.user, name=NAME, base_version_id=base),
    )


def test_restore_environment_brings_back_one_environment_only(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    v1 = aws.read_current(NAME).version_id
    v2 = save(
        ctx,
        v1,
        Edit("set", "dev", "stripe", "secret_key", "dev2"),
        Edit("set", "sandbox", "x", "k", "s2"),
    ).new_version_id
    v3 = save(ctx, v2, Edit("remove_service", "dev", "databricks")).new_version_id
    result = restore(ctx, "dev", v1, v3)
    doc = current_doc()
    assert doc["dev"] == STANDARD_DOC["dev"]
    assert doc["sandbox"]["x"]["k"] == "s2"  # other environments do not roll back
    assert {c.environment for c in result.cells} == {"dev"}
    event = AuditEvent.objects.get(action="environment_restore", outcome="succeeded")
    assert event.detail["from"] == v1 and event.environment == "dev"


def _change_main_outside_the_editor(base: str) -> str:
    """Move AWSCURRENT to a version whose ``main`` differs, through the CAS write path."""
    doc = changesets.apply(current_doc(), [Edit("set", "main", "stripe", "secret_key", "m2")])
    staged = aws.stage_version(NAME, text=documents.serialise(doc), token=str(uuid.uuid4()))
    aws.promote(NAME, version_id=staged, base_version_id=base)
    aws.drop_staging_label(NAME, version_id=staged)
    return staged


def test_restore_of_a_protected_environment_opens_a_change_request(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    v1 = aws.read_current(NAME).version_id
    v2 = _change_main_outside_the_editor(v1)
    result = restore(ctx, "main", v1, v2)
    assert isinstance(result, ChangeRequest)
    assert result.status == ChangeRequest.Status.OPEN and result.environments == ["main"]
    assert aws.read_current(NAME).version_id == v2  # nothing current until approved


def test_restore_is_not_rebased_over_someone_elses_edit_of_that_environment(
    make_secret: Any, ctx: audit.Context
) -> None:
    make_secret(NAME, STANDARD_DOC)
    v1 = aws.read_current(NAME).version_id
    v2 = save(ctx, v1, Edit("set", "dev", "stripe", "secret_key", "dev2")).new_version_id
    save(ctx, v2, Edit("set", "dev", "stripe", "new_key", "theirs"))  # dev changes again
    with pytest.raises(errors.Conflict) as info:
        restore(ctx, "dev", v1, v2)
    assert [c.key for c in info.value.cells] == ["new_key"]


# ----------------------------------------------------------------------------------------
# Create and undelete


def test_create_secret_with_environments_template_tags_and_kms(ctx: audit.Context, sm: Any) -> None:
    created = lifecycle.secret_create(
        repo="shiny-app",
        context=ctx,
        description="Shiny",
        services={"stripe": ["public_key", "secret_key"], "empty": []},
        tags={"team": "core"},
        kms_key_id="alias/portal-test",
    )
    d = sm.describe_secret(SecretId="shiny-app-secrets")
    assert d["Description"] == "Shiny" and {"Key": "team", "Value": "core"} in d["Tags"]
    assert d.get("KmsKeyId") == "alias/portal-test"
    doc = current_doc("shiny-app-secrets")
    assert list(doc) == ["sandbox", "dev", "main"]
    assert doc["main"] == {"stripe": {"public_key": "", "secret_key": ""}, "empty": {}}
    event = AuditEvent.objects.get(action="secret_create", outcome="succeeded")
    assert event.new_version == created.version_id


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("", "repository name followed by"),
        ("bad name", "only ASCII letters"),
        ("ü", "only ASCII letters"),
        ("x" * 505, "at most 512"),
    ],
)
def test_create_refuses_names_aws_or_the_standard_refuse(
    ctx: audit.Context, repo: str, message: str
) -> None:
    with pytest.raises(errors.InvalidChange, match=message):
        lifecycle.secret_create(repo=repo, context=ctx)


def test_secret_name_rules() -> None:
    assert documents.secret_name_problem("a-secrets", "-secrets") is None
    assert documents.secret_name_problem("a/b_c+d=e.f@g-secrets", "-secrets") is None
    assert "hyphen and six" in (documents.secret_name_problem("app-abcdef", "-abcdef") or "")


def test_create_of_an_existing_name_says_so(make_secret: Any, ctx: audit.Context) -> None:
    make_secret(NAME, STANDARD_DOC)
    with pytest.raises(errors.SecretExists, match="already exists"):
        lifecycle.secret_create(repo="a", context=ctx)
    assert (
        AuditEvent.objects.get(action="secret_create", outcome="failed").error_code
        == "SecretExists"
    )


def test_create_of_a_name_pending_deletion_offers_restore_and_undelete_works(
    make_secret: Any, ctx: audit.Context, sm: Any
) -> None:
    make_secret(NAME, STANDARD_DOC)
    sm.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)
    with pytest.raises(errors.SecretPendingDeletion, match="restore it"):
        lifecycle.secret_create(repo="a", context=ctx)
    lifecycle.secret_undelete(name=NAME, context=ctx)
    assert "DeletedDate" not in sm.describe_secret(SecretId=NAME)
    assert AuditEvent.objects.filter(action="secret_undelete", outcome="succeeded").count() == 1


def test_bad_environment_names_in_the_template_are_refused(ctx: audit.Context) -> None:
    with pytest.raises(errors.InvalidChange, match="leading or trailing"):
        lifecycle.secret_create(repo="z", context=ctx, environments=["dev", " main"])
