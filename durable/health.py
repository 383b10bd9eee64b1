"""Whether the engine's two dependencies answer: the database and the Redis that carries the queue.

For a load balancer's or an orchestrator's health check: each probe is one trivial round trip on
a connection of its own with a short time-out, so a check is fast even when a server is gone,
and it says only "ok" or "down" (the error goes to the log, never to the caller).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connections
from django_rq.connection_utils import get_redis_connection

from durable import conf

log = logging.getLogger("durable.health")

# Seconds a probe waits for Redis to connect or answer.
REDIS_TIMEOUT = 1.0


def redis_client(timeout: float = REDIS_TIMEOUT) -> Any:
    """A new client of the durable queue's Redis (from settings.RQ_QUEUES, read now), with short
    time-outs; the caller closes it."""
    client = get_redis_connection(settings.RQ_QUEUES[conf.get("QUEUE")])
    client.connection_pool.connection_kwargs.update(socket_connect_timeout=timeout, socket_timeout=timeout)
    return client


def database_ok() -> bool:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError as exc:
        log.warning("health: the database is down (%s)", exc)
        return False


def redis_ok() -> bool:
    client = redis_client()
    try:
        return bool(client.ping())
    except redis.RedisError as exc:
        log.warning("health: Redis is down (%s)", exc)
        return False
    finally:
        client.close()


def check() -> dict[str, str]:
    """{"database": "ok" | "down", "redis": "ok" | "down"}."""
    return {
        "database": "ok" if database_ok() else "down",
        "redis": "ok" if redis_ok() else "down",
    }
