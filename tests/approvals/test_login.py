"""Logging in: no redirect loop for a logged-in user, and failed logins are rate limited."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_logged_in_user_sent_to_the_login_page_goes_to_the_dashboard():
    user = get_user_model().objects.create_user("someone")
    client = Client()
    client.force_login(user)
    for target in ("/accounts/login/", "/accounts/login/?next=/", "https://evil.example/"):
        answer = client.get("/accounts/login/", {"next": target})
        assert answer.status_code == 302
        assert answer["Location"] == "/"
    assert client.get("/accounts/login/", {"next": "/queue/"})["Location"] == "/queue/"


def test_failed_logins_are_locked_out_with_429_and_retry_after(settings):
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_user("alice", password="right-password-1")
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(2):
        answer = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert answer.status_code == 200
        assert "did not match" in answer.content.decode()
    locked = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert "Too many failed logins" in locked.content.decode()
    # Locked out: even the right password does not log in now.
    again = client.post("/accounts/login/", {"username": "alice", "password": "right-password-1"})
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not locked out of the same account.
    other = Client(REMOTE_ADDR="198.51.100.9")
    assert other.post("/accounts/login/", {"username": "alice", "password": "right-password-1"}).status_code == 302
