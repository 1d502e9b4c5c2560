from django.urls import path, register_converter

from .views import audit, compliance, diff, integration, secrets


class SecretNameConverter:
    """Any name AWS allows for a secret: ASCII letters, digits and ``/_+=.@-`` (CreateSecret.Name)."""

    regex = r"[A-Za-z0-9/_+=.@-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SecretNameConverter, "secret")

app_name = "secrets_admin"

urlpatterns = [
    path("", secrets.secret_list, name="secret_list"),
    path("refresh/", secrets.secret_list_refresh, name="secret_list_refresh"),
    path("compliance/", compliance.compliance, name="compliance"),
    path("compliance/refresh/", compliance.compliance_refresh, name="compliance_refresh"),
    path("secrets/<secret:name>/reveal/", secrets.cell_reveal, name="cell_reveal"),
    path("secrets/<secret:name>/diff/", diff.environment_diff, name="environment_diff"),
    path(
        "secrets/<secret:name>/integration/",
        integration.secret_integration,
        name="secret_integration",
    ),
    path("secrets/<secret:name>/", secrets.secret_detail, name="secret_detail"),
    path("audit/", audit.audit_log, name="audit_log"),
    path("audit/events/<int:seq>/", audit.audit_event_detail, name="audit_event_detail"),
    path("audit/export/", audit.audit_export, name="audit_export"),
    path("audit/verify/", audit.audit_verify, name="audit_verify"),
    path("audit/secrets/<secret:name>/", audit.audit_secret_timeline, name="audit_secret_timeline"),
    path("audit/users/<str:username>/", audit.audit_user_timeline, name="audit_user_timeline"),
]
