"""Requests per API token, counted in fixed windows in a cache every process shares (Redis).

Over the limit, a request is refused with 429 and `Retry-After` (seconds to the next window).
If the cache cannot be reached the request goes through: a rate limit is not worth an outage.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import caches

from api import conf
from api.errors import ApiError

log = logging.getLogger(__name__)


def rate_limit_check(key_id: str) -> None:
    """Count one request of the token `key_id`. Raises ApiError (429) over the limit."""
    limit, window = int(conf.get("RATE_LIMIT_REQUESTS")), int(conf.get("RATE_LIMIT_WINDOW_SECONDS"))
    cache_name = conf.get("RATE_LIMIT_CACHE")
    if limit <= 0:
        return
    now = time.time()
    start = math.floor(now / window) * window
    key = f"api-rate:{key_id}:{start}"
    try:
        cache = caches[cache_name]
        cache.add(key, 0, timeout=window + 1)
        count = cache.incr(key)
    except Exception as exc:  # noqa: BLE001 - any cache failure lets the request through
        log.warning("API rate limit not checked (cache %s unavailable): %s", cache_name, exc)
        return
    if count > limit:
        retry_after = max(1, math.ceil(start + window - now))
        raise ApiError(
            429,
            "rate_limited",
            f"this token made more than {limit} requests in {window} s; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
