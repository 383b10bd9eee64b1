"""The engine's HTTP views: `/metrics` for Prometheus (durable.urls; the project includes them).

`/metrics` answers a request that carries `Authorization: Bearer <settings.DURABLE
METRICS_TOKEN>` (compared in constant time) or comes from a logged-in staff user; 401 without
credentials or with a wrong token, 403 for a user who is not staff. Never cached.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from durable import conf, scrape


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    verdict = _allowed(request)
    if verdict is not None:
        return verdict
    return HttpResponse(scrape.render(), content_type=CONTENT_TYPE_LATEST)


def _allowed(request: HttpRequest) -> HttpResponse | None:
    """None if the request may read the metrics, else the refusal."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    token = conf.get("METRICS_TOKEN")
    if scheme.lower() == "bearer" and presented:
        if token and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
        return _unauthorized('Bearer error="invalid_token"')
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.is_active and user.is_staff:
            return None
        return HttpResponse("Staff only.\n", status=403, content_type="text/plain")
    return _unauthorized("Bearer")


def _unauthorized(challenge: str) -> HttpResponse:
    response = HttpResponse("A bearer token or a staff login is needed.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = challenge
    return response
