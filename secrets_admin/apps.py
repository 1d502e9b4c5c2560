from django.apps import AppConfig


class SecretsAdminConfig(AppConfig):
    name = "secrets_admin"
    verbose_name = "Secrets Portal"
    default_auto_field = "django.db.models.BigAutoField"
