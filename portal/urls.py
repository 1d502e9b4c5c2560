from django.urls import include, path

from secrets_admin import health

urlpatterns = [
    # Answered by health.HealthCheckMiddleware before the host check; routed for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("", include("secrets_admin.urls")),
]

handler400 = "secrets_admin.views.errors.bad_request"
