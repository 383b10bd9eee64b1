"""The service's types under the official SDK's module name, so tests port by their import prefix.

Tests written for the official SDK import `ErrorObject`, `OperationType`, `OperationStatus` and
`InvocationStatus` from `aws_durable_execution_sdk_python.lambda_service`; here they come from
`durable.lambda_service`, the same objects the engine records (this module only names them).
No Django import: the replay core's types only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable.errors import CALLBACK_HEARTBEAT_TIMEOUT, CALLBACK_TIMEOUT, ErrorObject
from durable.state import OperationStatus, OperationSubType, OperationType


class InvocationStatus(enum.Enum):
    """How an invocation (and so a test run's execution) ended, as the official service reports it:
    an execution that timed out or was stopped is FAILED here (its own status says which)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PENDING = "PENDING"


@dataclass(frozen=True)
class DurableExecutionInvocationOutput:
    """What an invocation returns: its status, and the result (JSON text) or error."""

    status: InvocationStatus
    result: str | None = None
    error: ErrorObject | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DurableExecutionInvocationOutput:
        error = data.get("Error")
        return cls(
            InvocationStatus(data.get("Status")), data.get("Result"), ErrorObject.from_dict(error) if error else None
        )

    def to_dict(self) -> dict[str, Any]:
        output: dict[str, Any] = {"Status": self.status.value}
        if self.result is not None:
            output["Result"] = self.result
        if self.error is not None:
            output["Error"] = self.error.to_dict()
        return output


class CallbackTimeoutType(enum.Enum):
    """The error types the service records when a callback times out, by deadline or heartbeat."""

    TIMEOUT = CALLBACK_TIMEOUT
    HEARTBEAT = CALLBACK_HEARTBEAT_TIMEOUT


__all__ = [
    "CallbackTimeoutType",
    "DurableExecutionInvocationOutput",
    "ErrorObject",
    "InvocationStatus",
    "OperationStatus",
    "OperationSubType",
    "OperationType",
]
