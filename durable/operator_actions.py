"""What an operator can do to an execution, defined once for both doors: the admin's buttons
(durable/admin.py) and the shell's commands (durable_executions, durable_callback).

Each action's name is what the history records (`OperatorAction` events' "Action"), and each
`perform` function does the action through durable.client and returns the details recorded
with it, so the same act leaves the same record whichever door it came through.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from durable.client import (
    redrive_execution,
    reenqueue_execution,
    send_callback_failure,
    send_callback_heartbeat,
    send_callback_success,
    stop_execution,
)
from durable.errors import ErrorObject


class OperatorAction(enum.StrEnum):
    STOP = "stop"
    REDRIVE = "redrive"
    REENQUEUE = "reenqueue"
    COMPLETE_CALLBACK = "complete callback"
    FAIL_CALLBACK = "fail callback"
    HEARTBEAT_CALLBACK = "heartbeat callback"


# The permission (codename in app "durable") each action takes in the admin.
PERMISSIONS = {
    OperatorAction.STOP: "stop_execution",
    OperatorAction.REDRIVE: "redrive_execution",
    OperatorAction.REENQUEUE: "reenqueue_execution",
    OperatorAction.COMPLETE_CALLBACK: "complete_callback",
    OperatorAction.FAIL_CALLBACK: "complete_callback",
    OperatorAction.HEARTBEAT_CALLBACK: "complete_callback",
}
DEFAULT_STOP_REASON = "stopped by an operator"

ExecutionId = str | uuid.UUID


def stop(execution_id: ExecutionId, reason: str = "") -> dict[str, Any]:
    """Stop a RUNNING execution with `reason` as its error. Raises what stop_execution raises."""
    reason = reason or DEFAULT_STOP_REASON
    stop_execution(execution_id, error=ErrorObject("ExecutionStopped", reason).to_dict())
    return {"Reason": reason}


def redrive(execution_id: ExecutionId) -> dict[str, Any]:
    redrive_execution(execution_id)
    return {}


def reenqueue(execution_id: ExecutionId) -> dict[str, Any]:
    reenqueue_execution(execution_id)
    return {}


def complete_callback(callback_id: str, result: str | None) -> dict[str, Any]:
    send_callback_success(callback_id, result)
    return {"CallbackId": callback_id}


def fail_callback(callback_id: str, error: dict[str, Any]) -> dict[str, Any]:
    send_callback_failure(callback_id, error)
    return {"CallbackId": callback_id}


def heartbeat_callback(callback_id: str) -> dict[str, Any]:
    send_callback_heartbeat(callback_id)
    return {"CallbackId": callback_id}
