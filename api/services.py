"""Writes of the API: tokens (create, revoke, authenticate) and idempotent submits."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from api import conf
from api.errors import ApiError
from api.models import ApiToken, IdempotencyRecord, Scope
from approvals.webhooks import signing_secret

PREFIX = "dtk"
KEY_ID = re.compile(r"[0-9a-f]{1,32}")
# Writing last_used_at on every request would turn reads into writes; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    """What is shown once: the bearer token and the secret its webhooks are signed with."""

    token: ApiToken
    plaintext: str
    signing_secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, owner: User, name: str, scopes: Iterable[str], expires_at: datetime | None = None) -> IssuedToken:
    """Issue a token; its plaintext exists only in the return value. Raises ValueError on an unknown scope."""
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in Scope.values]
    if unknown or not chosen:
        raise ValueError(f"scopes must be among {', '.join(Scope.values)}; got {', '.join(unknown) or 'none'}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        key_id=key_id,
        secret_hash=_hash(secret),
        name=name.strip() or "unnamed",
        owner=owner,
        scopes=" ".join(chosen),
        expires_at=expires_at,
    )
    return IssuedToken(token, f"{PREFIX}_{key_id}_{secret}", signing_secret(key_id))


def token_revoke(token: ApiToken) -> bool:
    """Revoke a token at once; False if it was already revoked."""
    return bool(ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now()))


def token_authenticate(raw: str | None, *scopes: str) -> ApiToken:
    """The live token `raw` names, if it carries one of `scopes`. Raises ApiError (401 or 403)."""
    if not raw:
        raise ApiError(401, "not_authenticated", "send an API token: 'Authorization: Bearer <token>'")
    prefix, _, rest = raw.partition("_")
    key_id, _, secret = rest.partition("_")
    # Key ids are hex: anything else (a NUL, which PostgreSQL refuses in a query) is malformed.
    if prefix != PREFIX or not KEY_ID.fullmatch(key_id) or not secret:
        raise ApiError(401, "invalid_token", "the API token is malformed")
    token = ApiToken.objects.select_related("owner").filter(key_id=key_id).first()
    # Compare against a hash either way, so an unknown key id costs the same as a wrong secret.
    expected = token.secret_hash if token else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or token is None:
        raise ApiError(401, "invalid_token", "the API token is not valid")
    now = timezone.now()
    if token.revoked_at is not None:
        raise ApiError(401, "token_revoked", "this API token was revoked")
    if token.expires_at is not None and now >= token.expires_at:
        raise ApiError(401, "token_expired", "this API token has expired")
    if not token.owner.is_active:
        raise ApiError(401, "invalid_token", "the token's owner is inactive")
    if not set(scopes) & set(token.scope_list):
        raise ApiError(403, "missing_scope", f"this token lacks the scope '{scopes[0]}'")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def idempotent(
    *, token: ApiToken, key: str | None, request_hash: str, perform: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any]]:
    """Run `perform` once per (token, key): a retry with the same request gets the first answer,
    one with another request a 409. Keys expire after IDEMPOTENCY_TTL_SECONDS. Without a key,
    `perform` just runs."""
    if key is None:
        return perform()
    if not key or len(key) > 255 or not key.isprintable():
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable characters")
    now = timezone.now()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.filter(token=token, expires_at__lte=now).delete()
            found = IdempotencyRecord.objects.filter(token=token, key=key).first()
            if found is not None:
                return _replay(found, request_hash)
            status, body = perform()
            IdempotencyRecord.objects.create(
                token=token,
                key=key,
                request_hash=request_hash,
                status_code=status,
                response=body,
                expires_at=now + timedelta(seconds=conf.get("IDEMPOTENCY_TTL_SECONDS")),
            )
            return status, body
    except IntegrityError:
        # A concurrent request with the same key won the insert; our work was rolled back.
        found = IdempotencyRecord.objects.filter(token=token, key=key).first()
        if found is None:
            raise
        return _replay(found, request_hash)


def _replay(found: IdempotencyRecord, request_hash: str) -> tuple[int, dict[str, Any]]:
    if found.request_hash != request_hash:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key for a new request",
        )
    return found.status_code, found.response
