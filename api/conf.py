"""The API's settings, read lazily from `settings.API` so override_settings works."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Largest document text accepted, in bytes (UTF-8).
    "MAX_DOCUMENT_BYTES": 200_000,
    # Largest document metadata accepted, in bytes of JSON.
    "MAX_METADATA_BYTES": 16 * 1024,
    # How long an Idempotency-Key is remembered for its token.
    "IDEMPOTENCY_TTL_SECONDS": 24 * 3600,
    # Largest page of the documents list.
    "MAX_PAGE_SIZE": 100,
}


def get(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "API", {})}[name]
