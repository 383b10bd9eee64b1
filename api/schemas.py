"""Request and response bodies; the OpenAPI schema is generated from these."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field

# Callback ids are URL-safe base64 (the engine's are 32 characters); anything else is malformed.
CALLBACK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ErrorBody(Schema):
    code: str = Field(description="Stable, machine-readable: e.g. validation_error, missing_scope.")
    message: str = Field(description="What went wrong, for a person.")
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


class DocumentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, pattern=r"\S")
    text: str = Field(min_length=1, pattern=r"\S", description="The document; its size limit is configurable.")
    metadata: dict[str, Any] | None = None
    callback_url: str | None = Field(
        default=None, max_length=500, description="https URL the outcome is posted to, signed (see the README)."
    )


class DocumentAccepted(Schema):
    id: UUID
    execution_id: UUID
    status: str
    status_url: str


class DocumentOut(Schema):
    id: UUID
    title: str
    status: str
    status_detail: str
    execution_id: UUID | None
    metadata: dict[str, Any]
    callback_url: str | None
    rounds: int
    summary: str | None
    decision: str | None
    reviewer_comment: str | None
    published_text: str | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DocumentPage(Schema):
    count: int
    limit: int
    offset: int
    next_offset: int | None
    items: list[DocumentOut]


class ExecutionOut(Schema):
    id: UUID
    function_name: str
    execution_name: str
    status: str
    input: Any
    result: Any
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    timeout_at: datetime
    invocation_count: int
    parent_execution_id: UUID | None = Field(default=None, description="The execution whose invoke started this one.")
    parent_operation_id: str | None = Field(default=None, description="The invoke operation in the parent.")
    invoked_execution_ids: list[UUID] = Field(default_factory=list, description="Executions its invokes started.")


class HistoryOut(Schema):
    Events: list[dict[str, Any]]


class CallbackSuccessIn(Schema):
    model_config = ConfigDict(extra="forbid")

    result: Any = Field(default=None, description="Delivered to the handler as is if a string, else as its JSON text.")


class CallbackErrorIn(Schema):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=10_000)
    data: Any = None


class CallbackFailureIn(Schema):
    model_config = ConfigDict(extra="forbid")

    error: CallbackErrorIn | None = None


class CallbackOut(Schema):
    callback_id: str
    status: str
