"""The API's settings, declared once: `settings.API[key]`, else `API_<KEY>`, else the default
(see durable.conf.AppSettings). The largest document is the product's (APPROVALS)."""

from __future__ import annotations

from typing import Any

from durable.conf import AppSettings, Setting

SETTINGS = AppSettings(
    "API",
    {
        "MAX_METADATA_BYTES": Setting(16 * 1024, "API_MAX_METADATA_BYTES", int, "Largest document metadata (JSON)."),
        "IDEMPOTENCY_TTL_SECONDS": Setting(
            24 * 3600, "API_IDEMPOTENCY_TTL_SECONDS", int, "How long an Idempotency-Key is remembered."
        ),
        # Requests per token per window (0: no limit); over it the API answers 429 with Retry-After.
        "RATE_LIMIT_REQUESTS": Setting(300, "API_RATE_LIMIT_REQUESTS", int),
        "RATE_LIMIT_WINDOW_SECONDS": Setting(60, "API_RATE_LIMIT_WINDOW_SECONDS", int),
        # The cache counting them: one every process shares ("shared" is Redis at REDIS_URL).
        "RATE_LIMIT_CACHE": Setting("shared", "API_RATE_LIMIT_CACHE"),
    },
)


def get(name: str) -> Any:
    return SETTINGS.get(name)
