import pytest
from django.contrib.auth import get_user_model

from api.services import token_create

ALL_SCOPES = ("documents:submit", "executions:read", "callbacks:complete")


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("client-owner")  # no password: nothing to hash


@pytest.fixture
def other_owner(db):
    return get_user_model().objects.create_user("other-owner")


@pytest.fixture
def issue(owner):
    """issue(*scopes, owner=...) -> the IssuedToken (plaintext shown once)."""

    def make(*scopes, user=None, **kwargs):
        return token_create(owner=user or owner, name="test client", scopes=scopes or ALL_SCOPES, **kwargs)

    return make


class Api:
    """The Django test client speaking JSON with a bearer token."""

    def __init__(self, client, token=None):
        self.client = client
        self.token = token

    def headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, headers=self.headers(headers))

    def post(self, path, body=None, headers=None, raw=None, content_type="application/json"):
        import json

        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        return self.client.post(path, data, content_type=content_type, headers=self.headers(headers))


@pytest.fixture
def admin_user(db):
    """pytest-django's admin_client logs this user in; no password, so no slow hashing."""
    return get_user_model().objects.create_superuser("admin", "admin@example.com", password=None)


@pytest.fixture
def api(client, issue):
    """An Api with a token carrying every scope."""
    return Api(client, issue().plaintext)


@pytest.fixture
def make_api(client):
    return lambda token=None: Api(client, token)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]
