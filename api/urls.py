from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, include, path, re_path

from api.api import api, error_response, not_found
from api.errors import ApiError


def _methods(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """HEAD answers as GET does, without the body (ninja knows no HEAD), and a wrong method
    gets the API's error shape (ninja answers it with plain text)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "HEAD":
            request.method = "GET"
            response = view(request, *args, **kwargs)
            request.method = "HEAD"
            if isinstance(response, HttpResponseNotAllowed):
                response = view(request, *args, **kwargs)  # no GET here either: a 405 for HEAD
            else:
                length = len(response.content)
                response.content = b""
                response["Content-Length"] = str(length)
                return response
        else:
            response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            methods = set(response["Allow"].split(", "))
            allowed = ", ".join(sorted(methods | {"HEAD"} if "GET" in methods else methods))
            error = ApiError(405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}")
            response = error_response(request, error)
            response["Allow"] = allowed
        return response

    return wrapped


# Not `app_name`: Django would read that name as this module's namespace.
ninja_patterns, ninja_app, ninja_namespace = api.urls
for pattern in ninja_patterns:
    if isinstance(pattern, URLPattern):
        pattern.callback = _methods(pattern.callback)

urlpatterns = [
    path("", include((ninja_patterns, ninja_app), namespace=ninja_namespace)),
    re_path(r"^.*$", not_found),
]
