"""A finished execution as the official testing package shows it: a tree of typed operations.

Tests written for the official `DurableFunctionTestRunner` read `result.get_step("charge").result`,
`result.get_context("group").child_operations`, `op.status is OperationStatus.SUCCEEDED` and
`result.error.type`; these classes give them the same fields, read from our journal. The root
operations are those without a parent; each context, step and callback lists its children.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from durable.errors import ErrorObject
from durable.lambda_service import InvocationStatus
from durable.models import Execution
from durable.models import Operation as OperationRow
from durable.state import OperationStatus, OperationType


class DurableFunctionsTestError(Exception):
    """A test asked for something the result does not have (an operation name, an ended run)."""


class ExecutionStatus(enum.Enum):
    """The execution's own status, beside the invocation status: TIMED_OUT and STOPPED are told apart."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    TIMED_OUT = "TIMED_OUT"


@dataclass(frozen=True)
class Operation:
    """What every operation has; the subclasses add their type's details."""

    operation_id: str
    operation_type: OperationType
    status: OperationStatus
    parent_id: str | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    sub_type: str | None = field(default=None, kw_only=True)
    start_timestamp: datetime | None = field(default=None, kw_only=True)
    end_timestamp: datetime | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ExecutionOperation(Operation):
    """The execution itself; never among a result's operations (as in the official runner)."""

    input_payload: str | None = None


Found = TypeVar("Found", bound=Operation)


def _named(operations: Iterable[Operation], name: str, kind: type[Found], where: str) -> Found:
    for operation in operations:
        if operation.name == name:
            return cast(Found, operation)
    raise DurableFunctionsTestError(f"{where} with name '{name}' not found")


@dataclass(frozen=True)
class ContextOperation(Operation):
    """A child context (and the operations that have children: steps and callbacks)."""

    child_operations: list[Operation]
    result: str | None = None
    error: ErrorObject | None = None

    def get_operation_by_name(self, name: str) -> Operation:
        """The first child named `name`. Raises DurableFunctionsTestError."""
        return _named(self.child_operations, name, Operation, "Child Operation")

    def get_step(self, name: str) -> StepOperation:
        return _named(self.child_operations, name, StepOperation, "Child Operation")

    def get_wait(self, name: str) -> WaitOperation:
        return _named(self.child_operations, name, WaitOperation, "Child Operation")

    def get_context(self, name: str) -> ContextOperation:
        return _named(self.child_operations, name, ContextOperation, "Child Operation")

    def get_callback(self, name: str) -> CallbackOperation:
        return _named(self.child_operations, name, CallbackOperation, "Child Operation")

    def get_invoke(self, name: str) -> InvokeOperation:
        return _named(self.child_operations, name, InvokeOperation, "Child Operation")

    def get_execution(self, name: str) -> ExecutionOperation:
        return _named(self.child_operations, name, ExecutionOperation, "Child Operation")


@dataclass(frozen=True)
class StepOperation(ContextOperation):
    attempt: int = 0
    next_attempt_timestamp: datetime | None = None


@dataclass(frozen=True)
class WaitOperation(Operation):
    scheduled_end_timestamp: datetime | None = None


@dataclass(frozen=True)
class CallbackOperation(ContextOperation):
    callback_id: str | None = None


@dataclass(frozen=True)
class InvokeOperation(Operation):
    result: str | None = None
    error: ErrorObject | None = None


class OperationFactory(Protocol):
    """Builds the typed operation of a journal row (with its children from `rows`)."""

    def __call__(self, row: OperationRow, rows: list[OperationRow]) -> Operation: ...


def _error(value: dict[str, object] | None) -> ErrorObject | None:
    return ErrorObject.from_dict(value) if value else None


def _common(row: OperationRow) -> dict[str, Any]:
    return {
        "operation_id": row.operation_id,
        "operation_type": OperationType(row.type),
        "status": OperationStatus(row.status),
        "parent_id": row.parent_id,
        "name": row.name,
        "sub_type": row.sub_type,
        "start_timestamp": row.started_at,
        "end_timestamp": row.ended_at,
    }


def _with_children(row: OperationRow, rows: list[OperationRow]) -> dict[str, Any]:
    children = [create_operation(child, rows) for child in rows if child.parent_id == row.operation_id]
    return {**_common(row), "child_operations": children, "result": row.result, "error": _error(row.error)}


def _step(row: OperationRow, rows: list[OperationRow]) -> Operation:
    return StepOperation(**_with_children(row, rows), attempt=row.attempt, next_attempt_timestamp=row.next_attempt_at)


def _wait(row: OperationRow, rows: list[OperationRow]) -> Operation:
    return WaitOperation(**_common(row), scheduled_end_timestamp=row.wait_until)


def _callback(row: OperationRow, rows: list[OperationRow]) -> Operation:
    return CallbackOperation(**_with_children(row, rows), callback_id=row.callback_id)


def _context(row: OperationRow, rows: list[OperationRow]) -> Operation:
    return ContextOperation(**_with_children(row, rows))


def _invoke(row: OperationRow, rows: list[OperationRow]) -> Operation:
    return InvokeOperation(**_common(row), result=row.result, error=_error(row.error))


# How each type of journal row becomes a typed operation.
OPERATION_FACTORIES: dict[str, OperationFactory] = {
    OperationType.STEP: _step,
    OperationType.WAIT: _wait,
    OperationType.CALLBACK: _callback,
    OperationType.CONTEXT: _context,
    OperationType.CHAINED_INVOKE: _invoke,
}


def create_operation(row: OperationRow, rows: list[OperationRow]) -> Operation:
    """The typed operation of a journal row, with its children (from `rows`) as a tree.

    Raises DurableFunctionsTestError for a type the runner does not know.
    """
    factory = OPERATION_FACTORIES.get(row.type)
    if factory is None:
        raise DurableFunctionsTestError(f"Unknown operation type: {row.type}")
    return factory(row, rows)


@dataclass(frozen=True)
class DurableFunctionTestResult:
    """How a test run ended: `status` (SUCCEEDED or FAILED), the root operations as a tree,
    `result` (the handler's return value as JSON text), `error` and the execution's own status."""

    status: InvocationStatus
    operations: list[Operation]
    result: str | None = None
    error: ErrorObject | None = None
    execution_status: ExecutionStatus | None = None

    @classmethod
    def create(cls, execution: Execution) -> DurableFunctionTestResult:
        """The result of an ended execution. Raises DurableFunctionsTestError if it is still running."""
        if execution.status == ExecutionStatus.RUNNING.value:
            raise DurableFunctionsTestError(f"execution {execution.pk} has not ended")
        rows = list(execution.operations.order_by("id"))
        roots = [create_operation(row, rows) for row in rows if row.parent_id is None]
        status = InvocationStatus.SUCCEEDED if execution.status == "SUCCEEDED" else InvocationStatus.FAILED
        return cls(
            status=status,
            operations=roots,
            result=execution.result,
            error=_error(execution.error),
            execution_status=ExecutionStatus(execution.status),
        )

    def get_operation_by_name(self, name: str) -> Operation:
        """The first root operation named `name`. Raises DurableFunctionsTestError."""
        return _named(self.operations, name, Operation, "Operation")

    def get_step(self, name: str) -> StepOperation:
        return _named(self.operations, name, StepOperation, "Operation")

    def get_wait(self, name: str) -> WaitOperation:
        return _named(self.operations, name, WaitOperation, "Operation")

    def get_context(self, name: str) -> ContextOperation:
        return _named(self.operations, name, ContextOperation, "Operation")

    def get_callback(self, name: str) -> CallbackOperation:
        return _named(self.operations, name, CallbackOperation, "Operation")

    def get_invoke(self, name: str) -> InvokeOperation:
        return _named(self.operations, name, InvokeOperation, "Operation")

    def get_execution(self, name: str) -> ExecutionOperation:
        return _named(self.operations, name, ExecutionOperation, "Operation")

    def get_all_operations(self) -> list[Operation]:
        """Every operation of the tree, nested ones included (depth first, last root first)."""
        found: list[Operation] = []
        pending = list(self.operations)
        while pending:  # bounded: each operation is visited once (the tree has no cycles)
            operation = pending.pop()
            found.append(operation)
            pending.extend(getattr(operation, "child_operations", None) or [])
        return found
