from django.urls import path, register_converter

from .views import editor, history, secrets


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
    path("create/", editor.secret_create, name="secret_create"),
    path("secrets/<secret:name>/reveal/", secrets.cell_reveal, name="cell_reveal"),
    path("secrets/<secret:name>/edit/", editor.secret_edit, name="secret_edit"),
    path("secrets/<secret:name>/edit/row/", editor.secret_edit_row, name="secret_edit_row"),
    path(
        "secrets/<secret:name>/restore/",
        editor.secret_restore_environment,
        name="secret_restore_environment",
    ),
    path("secrets/<secret:name>/undelete/", editor.secret_undelete, name="secret_undelete"),
    path("secrets/<secret:name>/history/", history.secret_history, name="secret_history"),
    path("secrets/<secret:name>/diff/", history.secret_version_diff, name="secret_version_diff"),
    path("secrets/<secret:name>/", secrets.secret_detail, name="secret_detail"),
]
