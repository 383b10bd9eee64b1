"""The API: one NinjaAPI with the documents, executions and callbacks routers, and one error shape."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from api import callbacks, documents, executions
from api.errors import ApiError
from api.parser import StrictJsonParser

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="Durable Django API",
    version="1.0",
    description=(
        "Submit documents for LLM summary and human review; read durable executions; complete "
        "callbacks. Authenticate with `Authorization: Bearer <token>`; errors share one shape: "
        '`{"error": {"code": ..., "message": ...}}`.'
    ),
    urls_namespace="api",
    docs=Swagger(),  # served from django-ninja's own static files ("ninja" in INSTALLED_APPS): no CDN
    parser=StrictJsonParser(),
)
api.add_router("", documents.router)
api.add_router("", executions.router)
api.add_router("", callbacks.router)


def error_response(request: HttpRequest, error: ApiError) -> HttpResponse:
    response = api.create_response(request, error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(request, exc)


@api.exception_handler(NinjaValidationError)
def _validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    details = [
        {"loc": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors
    ]
    fields = ", ".join(".".join(str(p) for p in d["loc"][1:]) or d["loc"][0] for d in details if d["loc"])
    message = f"invalid request: check {fields}" if fields else "invalid request"
    return error_response(request, ApiError(422, "validation_error", message, details))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ApiError):  # our parser refused the body; ninja wrapped its error
        return error_response(request, exc.__cause__)
    if exc.status_code == 400:  # ninja raises this only when the body is not valid JSON
        return error_response(request, ApiError(400, "invalid_json", "the request body is not valid JSON"))
    return error_response(request, ApiError(exc.status_code, "http_error", exc.message))


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error_response(request, ApiError(413, "payload_too_large", "the request body is too large"))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, ApiError(404, "not_found", "not found"))


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("unhandled error in %s %s", request.method, request.path)
    return error_response(request, ApiError(500, "internal_error", "an unexpected error occurred; it was logged"))


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/: the same error shape, not Django's HTML page."""
    return error_response(request, ApiError(404, "not_found", f"no API endpoint at {request.path}"))
