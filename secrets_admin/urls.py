from django.conf import settings
from django.urls import path, register_converter

from .views import (
    audit,
    audit_proof,
    bulk_paste,
    change_requests,
    compliance,
    diff,
    editor,
    history,
    hygiene,
    integration,
    migration,
    secrets,
)


class AwsSecretNameConverter:
    """Any name AWS allows for a secret: ASCII letters, digits and ``/_+=.@-`` (CreateSecret.Name).
    Used where legacy (non-unified) secrets are named too: the audit timeline."""

    regex = r"[A-Za-z0-9/_+=.@-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class SecretNameConverter(AwsSecretNameConverter):
    """A unified secret's name: an AWS name ending in ``PORTAL_SECRET_SUFFIX`` with a repo before
    it. Any other name does not match the route (404), so no view sees it."""

    def to_python(self, value: str) -> str:
        suffix = settings.PORTAL_SECRET_SUFFIX
        if not value.endswith(suffix) or value == suffix:
            raise ValueError("not a unified secret")
        return value


register_converter(SecretNameConverter, "secret")
register_converter(AwsSecretNameConverter, "aws_secret")

app_name = "secrets_admin"

urlpatterns = [
    path("", secrets.secret_list, name="secret_list"),
    path("refresh/", secrets.secret_list_refresh, name="secret_list_refresh"),
    path("create/", editor.secret_create, name="secret_create"),
    path("migrate/", migration.secret_migrate, name="secret_migrate"),
    path("migrate/preview/", migration.secret_migrate_preview, name="secret_migrate_preview"),
    path("migrate/apply/", migration.secret_migrate_apply, name="secret_migrate_apply"),
    path(
        "migrate/schedule-deletion/",
        migration.legacy_secret_schedule_deletion,
        name="legacy_secret_schedule_deletion",
    ),
    path("compliance/", compliance.compliance, name="compliance"),
    path("compliance/refresh/", compliance.compliance_refresh, name="compliance_refresh"),
    # Credential hygiene, from the account-wide index (views/hygiene.py).
    path("hygiene/services/", hygiene.service_matrix, name="service_matrix"),
    path("hygiene/services/export/", hygiene.service_matrix_export, name="service_matrix_export"),
    path("hygiene/reuse/", hygiene.credential_reuse, name="credential_reuse"),
    path("hygiene/stale/", hygiene.credential_staleness, name="credential_staleness"),
    path("hygiene/adoption/", hygiene.standard_adoption, name="standard_adoption"),
    # A secret's name may contain "/", so routes with more path after the name come first:
    # "secrets/a-secrets/history/diff/" must not resolve as the diff of "a-secrets/history".
    path(
        "secrets/<secret:name>/history/diff/",
        history.secret_version_diff,
        name="secret_version_diff",
    ),
    path("secrets/<secret:name>/edit/row/", editor.secret_edit_row, name="secret_edit_row"),
    path("secrets/<secret:name>/history/", history.secret_history, name="secret_history"),
    path("status/", secrets.secret_list_status, name="secret_list_status"),
    path("secrets/<secret:name>/reveal/", secrets.cell_reveal, name="cell_reveal"),
    path("secrets/<secret:name>/diff/", diff.environment_diff, name="environment_diff"),
    path(
        "secrets/<secret:name>/copy/review/",
        diff.environment_copy_review,
        name="environment_copy_review",
    ),
    path(
        "secrets/<secret:name>/copy/save/",
        diff.environment_copy_save,
        name="environment_copy_save",
    ),
    path(
        "secrets/<secret:name>/integration/",
        integration.secret_integration,
        name="secret_integration",
    ),
    path(
        "secrets/<secret:name>/edit/review/", editor.secret_edit_review, name="secret_edit_review"
    ),
    path("secrets/<secret:name>/edit/save/", editor.secret_edit_save, name="secret_edit_save"),
    path("secrets/<secret:name>/edit/", editor.secret_edit, name="secret_edit"),
    path(
        "secrets/<secret:name>/restore/review/",
        editor.secret_restore_review,
        name="secret_restore_review",
    ),
    path(
        "secrets/<secret:name>/restore/save/",
        editor.secret_restore_save,
        name="secret_restore_save",
    ),
    path("secrets/<secret:name>/undelete/", editor.secret_undelete, name="secret_undelete"),
    # editing: bulk paste into one environment
    path(
        "secrets/<secret:name>/paste/preview/",
        bulk_paste.secret_bulk_paste_preview,
        name="secret_bulk_paste_preview",
    ),
    path("secrets/<secret:name>/paste/", bulk_paste.secret_bulk_paste, name="secret_bulk_paste"),
    # editing: the first version of a secret created without a value
    path(
        "secrets/<secret:name>/first-version/",
        editor.secret_first_version,
        name="secret_first_version",
    ),
    path("secrets/<secret:name>/", secrets.secret_detail, name="secret_detail"),
    path("changes/", change_requests.change_request_list, name="change_request_list"),
    path(
        "changes/<int:request_id>/",
        change_requests.change_request_detail,
        name="change_request_detail",
    ),
    path(
        "changes/<int:request_id>/approve/",
        change_requests.change_request_approve,
        name="change_request_approve",
    ),
    path(
        "changes/<int:request_id>/apply/",
        change_requests.change_request_apply,
        name="change_request_apply",
    ),
    path(
        "changes/<int:request_id>/reject/",
        change_requests.change_request_reject,
        name="change_request_reject",
    ),
    path(
        "changes/<int:request_id>/cancel/",
        change_requests.change_request_cancel,
        name="change_request_cancel",
    ),
    path(
        "changes/<int:request_id>/bypass/",
        change_requests.change_request_bypass,
        name="change_request_bypass",
    ),
    path(
        "changes/<int:request_id>/acknowledge/",
        change_requests.change_request_acknowledge,
        name="change_request_acknowledge",
    ),
    path("audit/", audit.audit_log, name="audit_log"),
    path("audit/events/<int:seq>/", audit.audit_event_detail, name="audit_event_detail"),
    path("audit/export/", audit.audit_export, name="audit_export"),
    path("audit/verify/", audit.audit_verify, name="audit_verify"),
    path(
        "audit/secrets/<aws_secret:name>/",
        audit.audit_secret_timeline,
        name="audit_secret_timeline",
    ),
    # Audit you can prove: one change request's evidence pack.
    path("audit/evidence/<int:pk>/", audit_proof.audit_evidence, name="audit_evidence"),
    path("audit/users/<str:username>/", audit.audit_user_timeline, name="audit_user_timeline"),
]
