"""API tokens: stored hashed, shown once, scoped, revocable, from admin or a command."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from api.models import ApiToken
from api.services import token_create, token_revoke
from approvals.models import Document
from approvals.webhooks import signing_secret
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db
BODY = {"title": "t", "text": "some text"}


def test_tokens_are_stored_hashed(issue):
    issued = issue()
    token = ApiToken.objects.get()
    secret = issued.plaintext.split("_", 2)[2]
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(v) for v in ApiToken.objects.values_list().get())
    assert secret not in stored
    assert issued.signing_secret not in stored
    assert issued.signing_secret == signing_secret(token.key_id)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Basic dXNlcjpwYXNz", "not_authenticated"),
        ("Bearer ", "not_authenticated"),
        ("Bearer nonsense", "invalid_token"),
        ("Bearer dtk_0123456789abcdef_wrong-secret", "invalid_token"),
    ],
)
def test_missing_and_bad_tokens_are_401(client, issue, header, code):
    issue()  # a real token exists; these are not it
    headers = {"Authorization": header} if header else {}
    for response in (
        client.post("/api/documents", BODY, content_type="application/json", headers=headers),
        client.get("/api/documents", headers=headers),
        client.get("/api/executions/00000000-0000-0000-0000-000000000000", headers=headers),
        client.post("/api/callbacks/x/heartbeat", headers=headers),
    ):
        assert_error(response, 401, code)
    assert not Document.objects.exists()


def test_a_right_key_id_with_a_wrong_secret_is_refused(client, issue):
    key_id = issue().token.key_id
    response = client.get("/api/documents", headers={"Authorization": f"Bearer dtk_{key_id}_guessed"})
    assert_error(response, 401, "invalid_token")


def test_revoked_and_expired_tokens_stop_working_at_once(make_api, issue):
    issued = issue()
    api = make_api(issued.plaintext)
    assert api.get("/api/documents").status_code == 200
    assert token_revoke(issued.token)
    assert not token_revoke(issued.token)
    assert_error(api.post("/api/documents", BODY), 401, "token_revoked")
    expired = make_api(issue(expires_at=timezone.now() - timedelta(seconds=1)).plaintext)
    assert_error(expired.get("/api/documents"), 401, "token_expired")
    assert not Document.objects.exists()


def test_a_token_of_an_inactive_owner_is_refused(make_api, issue, owner):
    api = make_api(issue().plaintext)
    owner.is_active = False
    owner.save()
    assert_error(api.get("/api/documents"), 401, "invalid_token")


def test_last_use_is_recorded(make_api, issue):
    issued = issue()
    assert issued.token.last_used_at is None
    make_api(issued.plaintext).get("/api/documents")
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


def test_unknown_scopes_are_refused(owner):
    with pytest.raises(ValueError, match="scopes"):
        token_create(owner=owner, name="x", scopes=["admin"])
    with pytest.raises(ValueError, match="scopes"):
        token_create(owner=owner, name="x", scopes=[])
    assert not ApiToken.objects.exists()


def test_create_and_revoke_by_command(owner, make_api):
    out = StringIO()
    call_command(
        "create_api_token", "--user", owner.username, "--name", "crm", "--scope", "documents:submit", stdout=out
    )
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line)
    token = ApiToken.objects.get()
    assert (token.name, token.scope_list, token.owner) == ("crm", ["documents:submit"], owner)
    api = make_api(lines["token"])
    assert api.get("/api/documents").status_code == 200
    assert lines["webhook signing secret"] == signing_secret(token.key_id)
    call_command("revoke_api_token", token.key_id, stdout=StringIO())
    assert_error(api.get("/api/documents"), 401, "token_revoked")
    with pytest.raises(CommandError, match="already revoked"):
        call_command("revoke_api_token", token.key_id)
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_token", "--user", "nobody", "--name", "x", "--scope", "documents:submit")


def test_admin_creates_a_token_and_shows_it_once(admin_client, owner, make_api):
    response = admin_client.post(
        "/admin/api/apitoken/add/",
        {"name": "chat bot", "owner": owner.pk, "scope_choices": ["documents:submit", "callbacks:complete"]},
    )
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    html = response.content.decode()
    plaintext = html.split('id="api-token">')[1].split("<")[0]
    assert plaintext.startswith(f"dtk_{token.key_id}_")
    assert signing_secret(token.key_id) in html
    assert token.scope_list == ["callbacks:complete", "documents:submit"]
    assert make_api(plaintext).get("/api/documents").status_code == 200
    # The token's page never shows the secret again.
    page = admin_client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert plaintext.split("_", 2)[2] not in page
    assert "chat bot" in page


def test_admin_revokes_tokens(admin_client, issue, make_api):
    issued = issue()
    response = admin_client.post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [issued.token.pk]}, follow=True
    )
    assert "Revoked 1 token" in response.content.decode()
    assert_error(make_api(issued.plaintext).get("/api/documents"), 401, "token_revoked")


def test_non_staff_cannot_reach_the_token_admin(client, owner):
    client.force_login(owner)
    response = client.get("/admin/api/apitoken/add/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
