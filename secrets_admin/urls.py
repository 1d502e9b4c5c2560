from django.urls import path, register_converter

from .views import secrets


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
    path("status/", secrets.secret_list_status, name="secret_list_status"),
    path("secrets/<secret:name>/reveal/", secrets.cell_reveal, name="cell_reveal"),
    path("secrets/<secret:name>/", secrets.secret_detail, name="secret_detail"),
]
