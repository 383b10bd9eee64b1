"""Complete callbacks from outside Django, as SendDurableExecutionCallback{Success,Failure,Heartbeat} do."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from ninja import Router

from api.auth import TokenAuth
from api.errors import ApiError
from api.models import Scope
from api.responses import errors
from api.schemas import CallbackFailureIn, CallbackOut, CallbackSuccessIn
from durable import conf as durable_conf
from durable.client import send_callback_failure, send_callback_heartbeat, send_callback_success
from durable.exceptions import (
    CallbackAlreadyCompletedError,
    CallbackExpiredError,
    CallbackNotFoundError,
    ValidationError,
)
from durable.models import Operation
from durable.state import OperationStatus

router = Router(tags=["callbacks"], auth=TokenAuth(Scope.COMPLETE_CALLBACKS))
ERRORS = errors(400, 401, 403, 404, 409, 410, 413, 422)


def _complete(callback_id: str, send: Callable[[], None], status: str) -> dict[str, Any]:
    try:
        send()
    except CallbackNotFoundError as exc:
        raise ApiError(404, "callback_not_found", str(exc)) from None
    except CallbackExpiredError as exc:
        raise ApiError(410, "callback_expired", str(exc)) from None
    except CallbackAlreadyCompletedError as exc:
        # The sweep marks a callback past its deadline TIMED_OUT: for the caller that is expiry.
        timed_out = Operation.objects.filter(callback_id=callback_id, status=OperationStatus.TIMED_OUT).exists()
        if timed_out:
            raise ApiError(410, "callback_expired", str(exc)) from None
        raise ApiError(409, "callback_already_completed", str(exc)) from None
    except ValidationError as exc:
        raise ApiError(413, "payload_too_large", str(exc)) from None
    return {"callback_id": callback_id, "status": status}


def _payload(value: Any, what: str) -> str | None:
    text = value if value is None or isinstance(value, str) else json.dumps(value)
    limit = durable_conf.get("MAX_CALLBACK_RESULT_BYTES")
    if text is not None and len(text.encode()) > limit:
        raise ApiError(413, "payload_too_large", f"the {what} is larger than {limit} bytes")
    return text


@router.post("/callbacks/{callback_id}/succeed", response={200: CallbackOut, **ERRORS})
def succeed_callback(request: HttpRequest, callback_id: str, payload: CallbackSuccessIn) -> dict[str, Any]:
    """Complete a waiting callback with a result; the execution resumes."""
    result = _payload(payload.result, "result")
    return _complete(callback_id, lambda: send_callback_success(callback_id, result), "SUCCEEDED")


@router.post("/callbacks/{callback_id}/fail", response={200: CallbackOut, **ERRORS})
def fail_callback(request: HttpRequest, callback_id: str, payload: CallbackFailureIn) -> dict[str, Any]:
    """Complete a waiting callback with an error; the handler sees a CallbackError."""
    error = payload.error
    details = {
        "ErrorType": (error.type if error else None) or "CallbackError",
        "ErrorMessage": (error.message if error else None) or "the callback failed",
        "ErrorData": _payload(error.data if error else None, "error data"),
        "StackTrace": [],
    }
    return _complete(callback_id, lambda: send_callback_failure(callback_id, details), "FAILED")


@router.post("/callbacks/{callback_id}/heartbeat", response={200: CallbackOut, **ERRORS})
def heartbeat_callback(request: HttpRequest, callback_id: str) -> dict[str, Any]:
    """Tell a waiting callback its work is still going: its heartbeat deadline moves on."""
    return _complete(callback_id, lambda: send_callback_heartbeat(callback_id), "STARTED")
