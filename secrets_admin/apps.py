from django.apps import AppConfig


class SecretsAdminConfig(AppConfig):
    name = "secrets_admin"
    verbose_name = "Secrets Portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401 - registers the system checks
            signals,  # noqa: F401 - connects the sign-in/out receivers
        )
        from .observability import metrics as observability_metrics  # noqa: F401 - counters
        from .observability import signals as observability_signals  # noqa: F401 - audit lines
        from .permissions import access_rules

        access_rules()  # read the access rules now: an invalid rule stops the start, naming it
