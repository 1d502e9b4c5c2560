from django.urls import include, path

from secrets_admin.observability.metrics import metrics_view

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    # deploy: Prometheus scrape endpoint, bearer token only (PORTAL_METRICS_TOKEN; off: 404)
    path("metrics", metrics_view, name="portal_metrics"),
    path("", include("secrets_admin.urls")),
]

handler400 = "secrets_admin.views.errors.bad_request"
