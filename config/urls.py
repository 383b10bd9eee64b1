from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from approvals.views import LoginView
from durable import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database and Redis answer, else 503 naming which is down; no login, no details."""
    checks = health.check()
    up = all(state == "ok" for state in checks.values())
    return JsonResponse({"status": "ok" if up else "down", **checks}, status=200 if up else 503)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("", include("durable.urls")),
    path("", include("approvals.urls")),
]
