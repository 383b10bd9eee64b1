"""API tokens (stored hashed) and the answers remembered for Idempotency-Keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Scope(models.TextChoices):
    SUBMIT_DOCUMENTS = "documents:submit", "submit documents and read them back"
    READ_EXECUTIONS = "executions:read", "read the executions the owner started, and their history"
    READ_ALL_EXECUTIONS = "executions:read_all", "operators: read every execution and its history"
    COMPLETE_CALLBACKS = "callbacks:complete", "complete, fail and heartbeat callbacks"


class ApiToken(models.Model):
    """A bearer token `dtk_<key_id>_<secret>`: the key id finds the row, the secret is checked
    against its SHA-256 (a 256-bit random secret needs no slow hash)."""

    key_id = models.CharField(max_length=32, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the client system's name.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    scopes = models.CharField(max_length=200, help_text="Space-separated scopes.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyRecord(models.Model):
    """The first answer to a submit under (token, Idempotency-Key), replayed to retries."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="api_idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.token_id})"
