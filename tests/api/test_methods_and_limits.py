"""HEAD answers as GET; requests per token are limited (429 with Retry-After, counted in Redis)."""

import pytest

from approvals.services import document_submit
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_head_on_the_api_get_endpoints_answers_as_get_without_a_body(api, owner):
    document = document_submit(title="Head", text="Some text.", submitter=owner)
    for path in (
        "/api/documents",
        f"/api/documents/{document.public_id}",
        f"/api/executions/{document.execution_id}",
        f"/api/executions/{document.execution_id}/history",
    ):
        get = api.get(path)
        head = api.client.head(path, headers=api.headers())
        assert (get.status_code, head.status_code) == (200, 200), path
        assert head.content == b""
        assert head["Content-Type"] == get["Content-Type"]
        assert int(head["Content-Length"]) == len(get.content)


def test_head_keeps_authentication_and_the_allow_header(api, make_api):
    assert make_api().client.head("/api/documents").status_code == 401
    refused = api.client.head("/api/callbacks/abc/succeed", headers=api.headers())
    assert refused.status_code == 405
    assert refused["Allow"] == "POST"
    put = api.client.put("/api/documents", headers=api.headers())
    assert_error(put, 405, "method_not_allowed")
    assert put["Allow"] == "GET, HEAD, POST"  # in one order, whatever order ninja lists them in


@pytest.fixture
def limited(settings, redis_server):
    """Three requests a minute per token, counted in a real Redis (the shared cache)."""
    redis_server.client().flushall()
    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_server.url},
    }
    settings.API = {"RATE_LIMIT_REQUESTS": 3, "RATE_LIMIT_WINDOW_SECONDS": 60, "RATE_LIMIT_CACHE": "shared"}
    return redis_server


@pytest.mark.processes
def test_a_token_over_its_rate_limit_gets_429_with_retry_after(limited, issue, make_api):
    api = make_api(issue().plaintext)
    other = make_api(issue().plaintext)
    assert [api.get("/api/documents").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/api/documents")
    error = assert_error(refused, 429, "rate_limited")
    assert "3 requests" in error["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert_error(api.post("/api/documents", {"title": "t", "text": "t"}), 429, "rate_limited")
    assert other.get("/api/documents").status_code == 200  # per token
    assert any(key.startswith(b":1:api-rate:") for key in limited.client().keys("*"))  # counted in Redis


def test_the_rate_limit_lets_requests_through_when_redis_is_down(settings, issue, make_api):
    settings.CACHES = {
        **settings.CACHES,
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"},
    }
    settings.API = {"RATE_LIMIT_REQUESTS": 1, "RATE_LIMIT_WINDOW_SECONDS": 60, "RATE_LIMIT_CACHE": "shared"}
    api = make_api(issue().plaintext)
    assert [api.get("/api/documents").status_code for _ in range(3)] == [200, 200, 200]
