from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, include, path, re_path

from api.api import api, error_response, not_found
from api.errors import ApiError


def _json_405(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """ninja answers a wrong method with plain text; give it the API's error shape."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            error = ApiError(405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}")
            response = error_response(request, error)
            response["Allow"] = allowed
        return response

    return wrapped


# Not `app_name`: Django would read that name as this module's namespace.
ninja_patterns, ninja_app, ninja_namespace = api.urls
for pattern in ninja_patterns:
    if isinstance(pattern, URLPattern):
        pattern.callback = _json_405(pattern.callback)  # type: ignore[misc]

urlpatterns = [
    path("", include((ninja_patterns, ninja_app), namespace=ninja_namespace)),
    re_path(r"^.*$", not_found),
]
