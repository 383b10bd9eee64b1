"""The documents API: submit a document for summary and review, read where it stands."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.urls import reverse
from django.utils import timezone
from ninja import Header, Query, Router, Status

from api import conf
from api.auth import TokenAuth
from api.errors import ApiError
from api.http import TokenHttpRequest
from api.models import ApiToken, Scope
from api.responses import errors
from api.schemas import DocumentAccepted, DocumentIn, DocumentOut, DocumentPage
from api.services import idempotent
from approvals import conf as approvals_conf
from approvals.errors import CallbackURLError, InvalidValueError
from approvals.models import Document, DocumentStatus
from approvals.selectors import document_get_outcome, document_list_submitted
from approvals.services import document_submit

router = Router(tags=["documents"], auth=TokenAuth(Scope.SUBMIT_DOCUMENTS))
# The largest page of the documents list.
MAX_PAGE = 100


@router.post("/documents", response={202: DocumentAccepted, **errors(400, 401, 403, 409, 413, 422, 429)})
def submit_document(
    request: TokenHttpRequest,
    payload: DocumentIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),  # type: ignore[type-arg]
) -> Status[dict[str, Any]]:
    """Submit a document: it is summarized, reviewed, and (if approved) published.

    Answers 202 at once; follow `status_url`. A retry with the same Idempotency-Key and body gets
    the first answer; the same key with another body gets 409.
    """
    token: ApiToken = request.auth
    _check_sizes(payload)
    body = payload.model_dump()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    def perform() -> tuple[int, dict[str, Any]]:
        try:
            document = document_submit(
                title=payload.title,
                text=payload.text,
                submitter=token.owner,
                metadata=payload.metadata,
                callback_url=payload.callback_url or "",
                webhook_key_id=token.key_id,
            )
        except CallbackURLError as exc:
            raise ApiError(422, "invalid_callback_url", str(exc)) from None
        except InvalidValueError as exc:
            detail = {"loc": ["body", *exc.loc], "message": str(exc), "type": exc.kind}
            raise ApiError(422, "validation_error", str(exc), [detail]) from None
        url = reverse("api:get_document", kwargs={"document_id": document.public_id})
        return 202, {
            "id": str(document.public_id),
            "execution_id": str(document.execution_id),
            "status": document.status,
            "status_url": request.build_absolute_uri(url),
        }

    status, answer = idempotent(token=token, key=idempotency_key, request_hash=digest, perform=perform)
    return Status(status, answer)


def _check_sizes(payload: DocumentIn) -> None:
    size, limit = len(payload.text.encode()), approvals_conf.get("MAX_DOCUMENT_BYTES")
    if size > limit:
        raise ApiError(413, "document_too_large", f"the text is {size} bytes; the limit is {limit}")
    if payload.metadata is not None:
        size, limit = len(json.dumps(payload.metadata).encode()), conf.get("MAX_METADATA_BYTES")
        if size > limit:
            raise ApiError(413, "metadata_too_large", f"metadata is {size} bytes of JSON; the limit is {limit}")


@router.get("/documents/{document_id}", response={200: DocumentOut, **errors(401, 403, 404, 422, 429)})
def get_document(request: TokenHttpRequest, document_id: UUID) -> dict[str, Any]:
    """A document's status, latest summary, decision, reviewer comment and published text."""
    token: ApiToken = request.auth
    document = Document.objects.filter(public_id=document_id, submitter=token.owner).first()
    if document is None:  # another owner's document is as unknown as a missing one
        raise ApiError(404, "not_found", f"no document {document_id}")
    return document_get_outcome(document=document)


@router.get("/documents", response={200: DocumentPage, **errors(401, 403, 422, 429)})
def list_documents(
    request: TokenHttpRequest,
    status: DocumentStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = Query(20, ge=1, le=MAX_PAGE),  # type: ignore[type-arg]
    offset: int = Query(0, ge=0, le=10**9),  # type: ignore[type-arg]
) -> dict[str, Any]:
    """The token owner's documents, newest first, by status and creation time, a page at a time."""
    token: ApiToken = request.auth
    documents = document_list_submitted(
        user=token.owner,
        status=status,
        created_after=_aware(created_after, "created_after"),
        created_before=_aware(created_before, "created_before"),
    )
    count = documents.count()
    page = [document_get_outcome(document=d) for d in documents[offset : offset + limit]]
    return {
        "count": count,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < count else None,
        "items": page,
    }


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        aware = value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "validation_error", f"{name} is out of range") from None
