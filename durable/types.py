"""Contexts handed to user code inside operations."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


class LoggerInterface(Protocol):
    def debug(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def info(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def warning(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def error(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def exception(self, msg: object, *args: object, extra: Any = None) -> None: ...


@dataclass
class OperationContext:
    logger: LoggerInterface | logging.LoggerAdapter[logging.Logger]


@dataclass
class StepContext(OperationContext):
    """What a step body receives: a logger and the attempt number (1 for the first)."""

    attempt: int


@dataclass
class WaitForCallbackContext(OperationContext):
    pass


@dataclass
class WaitForConditionCheckContext(OperationContext):
    """What a wait_for_condition check receives: a logger and the poll's number (1 for the first)."""

    attempt: int


# Protocols of the official SDK's `types` module: what user code may annotate with, without
# importing the classes that implement them.

C_co = TypeVar("C_co", covariant=True)
T = TypeVar("T")
C_contra = TypeVar("C_contra", contravariant=True)


class BatchResult(Protocol[T]):
    """What map and parallel return, as code may annotate it (durable.concurrency.models.BatchResult
    implements it)."""

    def get_results(self) -> list[T]: ...


class SummaryGenerator(Protocol[C_contra]):
    """Makes the text a map or parallel stores for its result (MapConfig.summary_generator)."""

    def __call__(self, result: C_contra) -> str: ...


class Callback(Protocol[C_co]):
    """A callback created by the handler: its id for the outside world, and its result."""

    callback_id: str

    def result(self) -> C_co | None: ...


class DurableContext(Protocol):
    """What a handler's context offers (implemented by `durable.context.DurableContext`)."""

    def step(self, func: Callable[[StepContext], T], name: str | None = None, config: Any = None) -> T: ...
    def run_in_child_context(self, func: Callable[[Any], T], name: str | None = None, config: Any = None) -> T: ...
    def wait(self, duration: Any, name: str | None = None) -> None: ...
    def create_callback(self, name: str | None = None, config: Any = None) -> Callback[Any]: ...


class LambdaContext(Protocol):
    """The runtime context a Lambda handler receives. Handlers here get none (they run on a
    worker); the type exists for code annotated with it."""

    aws_request_id: str
    function_name: str | None

    def get_remaining_time_in_millis(self) -> int: ...
    def log(self, msg: Any) -> None: ...


_DURABLE_EXECUTION_ARN = re.compile(
    r"^arn:[^:]*:lambda:[^:]*:[^:]*:function:(?P<function>[^:/]+):[^:/]+/durable-execution/"
    r"(?P<execution>[^/]+)/(?P<invocation>[^/]+)$"
)


@dataclass(frozen=True)
class DurableExecutionArn:
    """The parts of an AWS durable execution ARN (for ids that come from the service)."""

    function_name: str
    execution_name: str
    invocation_id: str

    @classmethod
    def from_arn(cls, arn: str) -> DurableExecutionArn | None:
        """The parts of `arn`, or None if it is not a durable execution's ARN (ours are UUIDs)."""
        found = _DURABLE_EXECUTION_ARN.match(arn)
        return cls(found["function"], found["execution"], found["invocation"]) if found else None
