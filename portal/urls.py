from django.urls import include, path

from secrets_admin import health
from secrets_admin.observability.metrics import metrics_view

urlpatterns = [
    # Answered by health.HealthCheckMiddleware before the host check; routed for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    # deploy: Prometheus scrape endpoint, bearer token only (PORTAL_METRICS_TOKEN; off: 404)
    path("metrics", metrics_view, name="portal_metrics"),
    path("", include("secrets_admin.urls")),
]

handler400 = "secrets_admin.views.errors.bad_request"
