"""Bearer-token authentication with one scope per endpoint; failures raise the API's errors."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from api.services import token_authenticate


class TokenAuth(HttpBearer):
    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = str(scope)

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get(self.header, "")
        scheme, _, raw = header.partition(" ")
        token = token_authenticate(raw.strip() if scheme.lower() == "bearer" else None, self.scope)
        request.auth = token  # type: ignore[attr-defined]
        return token

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ does it
        return token_authenticate(token, self.scope)
