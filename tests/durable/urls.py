"""URLs of the engine's test project: the admin (the engine's pages and django-rq's dashboard), /metrics,
and a view that starts an execution, as a project's own view would (for the tracing tests)."""

import json

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from durable.client import start_execution


@csrf_exempt
@require_POST
def start(request: HttpRequest, function_name: str) -> JsonResponse:
    payload = json.loads(request.body) if request.content_type == "application/json" else None
    execution = start_execution(function_name, payload)
    return JsonResponse({"execution_id": str(execution.pk)}, status=201)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("start/<str:function_name>", start),
    path("", include("durable.urls")),
]
