"""The error responses an endpoint declares, for its OpenAPI schema."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorOut


def errors(*statuses: int) -> dict[int, Any]:
    return dict.fromkeys(statuses, ErrorOut)
