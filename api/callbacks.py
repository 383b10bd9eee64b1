"""Complete callbacks from outside Django, as SendDurableExecutionCallback{Success,Failure,Heartbeat} do.

A review's callback is a decision, so completing one goes through the product's rules: the
token's owner decides (recorded on the review with who and when), and only if they may decide
reviews and did not submit the document. Other callbacks go to the engine as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ninja import Path, Router

from api.auth import TokenAuth
from api.errors import ApiError
from api.http import TokenHttpRequest
from api.models import ApiToken, Scope
from api.responses import errors
from api.schemas import CALLBACK_ID_PATTERN, CallbackFailureIn, CallbackOut, CallbackSuccessIn
from approvals import services
from approvals.errors import (
    InvalidDecisionError,
    InvalidValueError,
    NotAllowedToDecideError,
    ReviewAlreadyDecidedError,
    ReviewClosedError,
    ReviewerIsSubmitterError,
    ReviewExpiredError,
)
from approvals.models import Review
from approvals.selectors import review_get_by_callback
from durable.client import (
    callback_result_limit,
    send_callback_failure,
    send_callback_heartbeat,
    send_callback_success,
)
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    ValidationError,
)

router = Router(tags=["callbacks"], auth=TokenAuth(Scope.COMPLETE_CALLBACKS))
ERRORS = errors(400, 401, 403, 404, 409, 410, 413, 422, 429)
CallbackId = Path(..., pattern=CALLBACK_ID_PATTERN, description="The callback's id (URL-safe characters).")  # type: ignore[type-arg]


def _complete(callback_id: str, send: Callable[[], None], status: str) -> dict[str, Any]:
    try:
        send()
    except CallbackNotFoundError as exc:
        raise ApiError(404, "callback_not_found", str(exc)) from None
    except CallbackExpiredError as exc:
        raise ApiError(410, "callback_expired", str(exc)) from None
    except CallbackAlreadyCompletedError as exc:  # a timed-out callback is CallbackExpiredError
        raise ApiError(409, "callback_already_completed", str(exc)) from None
    except ValidationError as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    return {"callback_id": callback_id, "status": status}


def _payload(value: Any, what: str) -> str | None:
    text = value if value is None or isinstance(value, str) else json.dumps(value)
    limit = callback_result_limit()
    if text is not None and len(text.encode()) > limit:
        raise ApiError(413, "payload_too_large", f"the {what} is larger than {limit} bytes")
    return text


def _decision_error(exc: Exception) -> ApiError:
    """The product's refusal of a decision, as the API tells it."""
    message = str(exc)
    if isinstance(exc, NotAllowedToDecideError):
        return ApiError(403, "not_a_reviewer", f"{message}: this token's owner may not decide reviews")
    if isinstance(exc, ReviewerIsSubmitterError):
        return ApiError(
            403, "reviewer_is_submitter", "this token's owner submitted the document: they cannot decide it"
        )
    if isinstance(exc, InvalidDecisionError):
        return ApiError(422, "invalid_decision", message)
    if isinstance(exc, InvalidValueError):
        return ApiError(422, "validation_error", message)
    if isinstance(exc, ReviewAlreadyDecidedError):
        return ApiError(409, "callback_already_completed", message)
    if isinstance(exc, ReviewExpiredError):
        return ApiError(410, "callback_expired", message)
    if isinstance(exc, ReviewClosedError):
        return ApiError(404, "callback_not_found", message)
    raise exc


def _decide(review: Review, token: ApiToken, result: Any) -> dict[str, Any]:
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            raise ApiError(422, "invalid_decision", "a review's result is a JSON object with a decision") from None
    if not isinstance(result, dict) or not isinstance(result.get("decision"), str):
        raise ApiError(422, "invalid_decision", 'a review\'s result is {"decision": ..., "comment": ...}')
    comment = result.get("comment", "")
    if not isinstance(comment, str):
        raise ApiError(422, "invalid_decision", "comment must be a string")
    # A revision request may ask the next summary to ignore earlier rounds' feedback.
    start_over = result.get("start_over", False)
    if not isinstance(start_over, bool):
        raise ApiError(422, "invalid_decision", "start_over must be true or false")
    try:
        # An outside decision: recorded with the token's owner; a reviewer's claim does not stop it.
        services.review_decide(
            review,
            reviewer=token.owner,
            decision=result["decision"],
            comment=comment,
            override_claim=True,
            via="the API",
            start_over=start_over,
        )
    except (
        InvalidDecisionError,
        InvalidValueError,
        NotAllowedToDecideError,
        ReviewerIsSubmitterError,
        ReviewAlreadyDecidedError,
        ReviewExpiredError,
        ReviewClosedError,
    ) as exc:
        raise _decision_error(exc) from None
    return {"callback_id": review.callback_id, "status": "SUCCEEDED"}


def _check_may_decide(review: Review, token: ApiToken) -> None:
    """Failing a review's callback ends its document: the same people may do it as may decide."""
    owner = token.owner
    if not owner.has_perm(services.REVIEWER_PERMISSION):
        raise _decision_error(NotAllowedToDecideError("only reviewers may decide reviews"))
    if review.document.submitter_id == owner.pk:
        raise _decision_error(ReviewerIsSubmitterError("you cannot review a document you submitted"))


@router.post("/callbacks/{callback_id}/succeed", response={200: CallbackOut, **ERRORS})
def succeed_callback(
    request: TokenHttpRequest, payload: CallbackSuccessIn, callback_id: str = CallbackId
) -> dict[str, Any]:
    """Complete a waiting callback with a result; the execution resumes.

    A review's callback takes `{"result": {"decision": "approved" | "rejected" | "revise",
    "comment": "..."}}` and is decided as the token's owner (a reviewer, not the submitter)."""
    result = _payload(payload.result, "result")
    review = review_get_by_callback(callback_id=callback_id)
    if review is not None:
        return _decide(review, request.auth, payload.result)
    return _complete(callback_id, lambda: send_callback_success(callback_id, result), "SUCCEEDED")


@router.post("/callbacks/{callback_id}/fail", response={200: CallbackOut, **ERRORS})
def fail_callback(
    request: TokenHttpRequest, payload: CallbackFailureIn, callback_id: str = CallbackId
) -> dict[str, Any]:
    """Complete a waiting callback with an error; the handler sees a CallbackError."""
    error = payload.error
    details: dict[str, Any] = {
        "ErrorType": (error.type if error else None) or "CallbackError",
        "ErrorMessage": (error.message if error else None) or "the callback failed",
        "ErrorData": _payload(error.data if error else None, "error data"),
        "StackTrace": [],
    }
    review = review_get_by_callback(callback_id=callback_id)
    if review is not None:
        _check_may_decide(review, request.auth)
    answer = _complete(callback_id, lambda: send_callback_failure(callback_id, details), "FAILED")
    if review is not None:  # an outside decision: the document's workflow fails, and says who
        message = details["ErrorMessage"]
        services.document_record_event(
            review.document_id,
            services.EVENT_OUTSIDE_DECISION,
            request.auth.owner,
            f"failed the review of round {review.round} through the API: {message}",
        )
    return answer


@router.post("/callbacks/{callback_id}/heartbeat", response={200: CallbackOut, **ERRORS})
def heartbeat_callback(request: TokenHttpRequest, callback_id: str = CallbackId) -> dict[str, Any]:
    """Tell a waiting callback its work is still going: its heartbeat deadline moves on."""
    return _complete(callback_id, lambda: send_callback_heartbeat(callback_id), "STARTED")
