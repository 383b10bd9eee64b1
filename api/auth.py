"""Bearer-token authentication with scopes per endpoint and a rate limit per token; failures
raise the API's errors."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from api.ratelimit import rate_limit_check
from api.services import token_authenticate


class TokenAuth(HttpBearer):
    """Accepts a token holding any of `scopes`."""

    def __init__(self, *scopes: str) -> None:
        super().__init__()
        self.scopes = tuple(str(scope) for scope in scopes)

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get(self.header, "")
        scheme, _, raw = header.partition(" ")
        token = token_authenticate(raw.strip() if scheme.lower() == "bearer" else None, *self.scopes)
        rate_limit_check(token.key_id)
        request.auth = token  # type: ignore[attr-defined]
        return token

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ does it
        return token_authenticate(token, *self.scopes)
