"""`/healthz`: 200 while the database and Redis answer, 503 naming what is down; open to all."""

import time

import pytest

from tests.processes import free_port

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_with_everything_up(client, settings, redis_server):
    settings.RQ_QUEUES = {"default": {"URL": redis_server.url}}
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_names_a_redis_that_does_not_answer(client, settings):
    port = free_port()  # a real port that nothing listens on
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{port}/0"}}
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 3  # fast, even with Redis gone
    assert response.status_code == 503
    body = response.json()
    assert body == {"status": "down", "database": "ok", "redis": "down"}  # what is down, and nothing more
    assert str(port) not in response.content.decode()


def test_metrics_are_served_by_the_project(client, settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "METRICS_TOKEN": "project-token-" + "p" * 20}
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer project-token-" + "p" * 20})
    assert response.status_code == 200
    assert b"durable_executions_running" in response.content
