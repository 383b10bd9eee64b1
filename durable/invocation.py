"""What one invocation of a handler receives and returns, under the official SDK's names.

On Lambda an invocation is handed its execution's ARN, a checkpoint token and the journal so
far (`DurableExecutionInvocationInput`), and returns `DurableExecutionInvocationOutput`. Here a
worker's invocation gets the same three things from the database (the execution's id, its lease
token, the journal's operations); these classes give them the official shape for code that
builds or reads invocations by those names (tests of handlers, adapters). `durable.execution`
offers them where the official module does.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from durable.errors import ErrorObject
from durable.exceptions import CheckpointError
from durable.lambda_service import DurableExecutionInvocationOutput, InvocationStatus

# The largest response a Lambda invocation may return (6 MB less the envelope). Ours is bounded
# by settings.DURABLE["MAX_RESULT_BYTES"] instead; the figure is here for code that refers to it.
LAMBDA_RESPONSE_SIZE_LIMIT = 6 * 1024 * 1024 - 50


@dataclass(frozen=True)
class InitialExecutionState:
    """The journal an invocation starts from: its operations (as the service's dicts, or as
    records) and the marker of the next page (none here: the journal comes whole)."""

    operations: list[Any]
    next_marker: str

    @staticmethod
    def from_dict(input_dict: MutableMapping[str, Any]) -> InitialExecutionState:
        return InitialExecutionState(list(input_dict.get("Operations") or []), input_dict.get("NextMarker", ""))

    from_json_dict = from_dict

    def to_dict(self) -> MutableMapping[str, Any]:
        operations = [op.to_dict() if hasattr(op, "to_dict") else op for op in self.operations]
        return {"Operations": operations, "NextMarker": self.next_marker}

    to_json_dict = to_dict


@dataclass(frozen=True)
class DurableExecutionInvocationInput:
    """An invocation's input: whose it is, the token its checkpoints carry, the journal so far."""

    durable_execution_arn: str
    checkpoint_token: str
    initial_execution_state: InitialExecutionState
    updated_operation_ids: list[str] = field(default_factory=list, kw_only=True)

    @staticmethod
    def from_dict(input_dict: MutableMapping[str, Any]) -> DurableExecutionInvocationInput:
        """Raises KeyError without DurableExecutionArn or CheckpointToken."""
        return DurableExecutionInvocationInput(
            durable_execution_arn=input_dict["DurableExecutionArn"],
            checkpoint_token=input_dict["CheckpointToken"],
            initial_execution_state=InitialExecutionState.from_dict(input_dict.get("InitialExecutionState") or {}),
            updated_operation_ids=list(input_dict.get("UpdatedOperationIds") or []),
        )

    from_json_dict = from_dict

    def to_dict(self) -> MutableMapping[str, Any]:
        return {
            "DurableExecutionArn": self.durable_execution_arn,
            "CheckpointToken": self.checkpoint_token,
            "InitialExecutionState": self.initial_execution_state.to_dict(),
            "UpdatedOperationIds": list(self.updated_operation_ids),
        }

    to_json_dict = to_dict


@dataclass(frozen=True)
class DurableExecutionInvocationInputWithClient(DurableExecutionInvocationInput):
    """The input with the client its checkpoints go through (a stand-in, in tests)."""

    service_client: Any

    @staticmethod
    def from_durable_execution_invocation_input(
        invocation_input: DurableExecutionInvocationInput, service_client: Any
    ) -> DurableExecutionInvocationInputWithClient:
        return DurableExecutionInvocationInputWithClient(
            durable_execution_arn=invocation_input.durable_execution_arn,
            checkpoint_token=invocation_input.checkpoint_token,
            initial_execution_state=invocation_input.initial_execution_state,
            updated_operation_ids=list(invocation_input.updated_operation_ids),
            service_client=service_client,
        )


def handle_checkpoint_error(error: CheckpointError) -> DurableExecutionInvocationOutput:
    """A failed checkpoint's outcome: re-raised if retrying the invocation may help, else the
    invocation's FAILED output carrying it."""
    if error.is_retryable():
        raise error from None
    return DurableExecutionInvocationOutput(status=InvocationStatus.FAILED, error=ErrorObject.from_exception(error))
