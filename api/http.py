"""The request type of the API's endpoints: TokenAuth sets `request.auth` to the caller's token."""

from __future__ import annotations

from django.http import HttpRequest

from api.models import ApiToken


class TokenHttpRequest(HttpRequest):
    auth: ApiToken
