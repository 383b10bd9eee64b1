"""DurableContext: what a handler receives, and the decorators that name steps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from durable.config import Duration, StepConfig
from durable.identifier import operation_id
from durable.logger import ReplayAwareLogger, logger
from durable.operation.step import StepOperation
from durable.operation.wait import run_wait
from durable.state import ExecutionState
from durable.types import StepContext

T = TypeVar("T")
P = ParamSpec("P")


def durable_step(func: Callable[Concatenate[StepContext, P], T]) -> Callable[P, Callable[[StepContext], T]]:
    """Turn `f(step_context, *args)` into `f(*args)`, a step body named after `f`."""

    @functools.wraps(func)
    def bind(*args: P.args, **kwargs: P.kwargs) -> Callable[[StepContext], T]:
        def body(step_context: StepContext) -> T:
            return func(step_context, *args, **kwargs)

        body._original_name = func.__name__  # type: ignore[attr-defined]
        return body

    return bind


def _step_name(name: str | None, func: Callable[..., Any]) -> str | None:
    return name or getattr(func, "_original_name", None)


class DurableContext:
    """The handle a durable handler uses for every operation; one per (child) context."""

    def __init__(self, state: ExecutionState, parent_id: str | None = None) -> None:
        self.state = state
        self._parent_id = parent_id
        self._counter = 0
        self._logger = ReplayAwareLogger(
            logger,
            {"execution_id": state.execution_id, "parent_id": parent_id},
            state.is_replaying,
        )

    @property
    def execution_id(self) -> str:
        return self.state.execution_id

    @property
    def logger(self) -> ReplayAwareLogger:
        """A logger that stays silent while the handler replays completed work."""
        return self._logger

    def set_logger(self, new_logger: ReplayAwareLogger) -> None:
        self._logger = new_logger

    def is_replaying(self) -> bool:
        return self.state.is_replaying()

    def _next_operation_id(self) -> str:
        self._counter += 1
        return operation_id(self._parent_id, self._counter)

    def step(
        self,
        func: Callable[[StepContext], T],
        name: str | None = None,
        config: StepConfig | None = None,
    ) -> T:
        """Run `func` once (per attempt) and checkpoint its result; replays return the result.

        Raises StepError when the step fails for good.
        """
        op = StepOperation(
            self.state,
            self._next_operation_id(),
            self._parent_id,
            _step_name(name, func),
            config or StepConfig(),
            self._logger,
        )
        return op.run(func)

    def wait(self, duration: Duration, name: str | None = None) -> None:
        """Suspend the execution for `duration` (at least 1 second); nothing runs meanwhile."""
        run_wait(self.state, self._next_operation_id(), self._parent_id, duration.to_seconds(), name)
