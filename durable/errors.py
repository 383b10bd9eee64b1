"""`ErrorObject`: an error as the journal records it, with the official service's fields.

Every error the engine stores (a step's, a callback's, an execution's) goes through this one
type, so its shape is made in one place and its text is always storable: NUL characters and
lone surrogates escaped, data made JSON both databases accept (see `durable.storable`).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from durable.storable import escape, storable_json

# Stack traces are cut to their last lines: enough to find the fault, bounded in size.
STACK_LINES = 40

# The error types the official service records on a callback that timed out (by its deadline,
# or for want of a heartbeat); the handler still sees CallbackTimeoutError.
CALLBACK_TIMEOUT = "Callback.Timeout"
CALLBACK_HEARTBEAT_TIMEOUT = "Callback.Heartbeat"


@dataclass(frozen=True)
class ErrorObject:
    """ErrorType, ErrorMessage, ErrorData, StackTrace: the official ErrorObject's fields."""

    type: str
    message: str = ""
    data: Any = None
    stack_trace: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", escape(str(self.type)))
        object.__setattr__(self, "message", escape(str(self.message)))
        object.__setattr__(self, "data", storable_json(self.data))
        object.__setattr__(self, "stack_trace", [escape(str(line)) for line in self.stack_trace or []])

    @classmethod
    def from_exception(cls, error: BaseException) -> ErrorObject:
        """The error of an exception. An operation's error (a DurableOperationError: it carries
        `message`, `data` and `stack_trace`) keeps its recorded message, data and stack, as the
        official SDK records it; anything else gets its text and its own stack."""
        stack = [line.rstrip("\n") for line in traceback.format_exception(error)][-STACK_LINES:]
        if hasattr(error, "error_type") and hasattr(error, "stack_trace"):
            return cls(type(error).__name__, error.message or "", error.data, error.stack_trace or stack)  # type: ignore[attr-defined]
        return cls(type(error).__name__, str(error), None, stack)

    @classmethod
    def from_dict(cls, error: dict[str, Any] | None) -> ErrorObject:
        """Read the journal's shape (also the official ErrorObject's lower-case keys)."""
        error = error or {}
        return cls(
            str(error.get("ErrorType") or error.get("type") or ""),
            str(error.get("ErrorMessage") or error.get("message") or ""),
            error.get("ErrorData", error.get("data")),
            list(error.get("StackTrace") or error.get("stack_trace") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        """The journal's shape."""
        return {
            "ErrorType": self.type,
            "ErrorMessage": self.message,
            "ErrorData": self.data,
            "StackTrace": list(self.stack_trace),
        }
