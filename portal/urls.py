from django.urls import include, path

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("", include("secrets_admin.urls")),
]

handler400 = "secrets_admin.views.errors.bad_request"
