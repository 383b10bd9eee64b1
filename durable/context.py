"""DurableContext: what a handler receives, and the decorators that name steps."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from durable.batch_config import MapConfig, ParallelBranch, ParallelConfig
from durable.concurrency.models import BatchResult
from durable.config import CallbackConfig, ChildConfig, Duration, InvokeConfig, StepConfig, WaitForCallbackConfig
from durable.exceptions import (
    CallbackError,
    CallbackExternalError,
    CallbackSubmitterError,
    CallbackTimeoutError,
    ChildContextError,
    ValidationError,
)
from durable.identifier import operation_id
from durable.logger import Logger, LogInfo, ReplayAwareLogger, logger
from durable.operation.callback import Callback, create_callback
from durable.operation.child import run_child
from durable.operation.flat import run_virtual_context
from durable.operation.invoke import run_invoke
from durable.operation.map import check_map, run_map
from durable.operation.parallel import check_parallel, run_parallel
from durable.operation.race import Branches, RaceConfig, RaceResult, branch_list, run_race
from durable.operation.step import StepOperation
from durable.operation.wait import run_wait
from durable.operation.wait_for_condition import run_wait_for_condition
from durable.serdes import PassThroughSerDes
from durable.state import ExecutionState, OperationSubType, check_name
from durable.types import LoggerInterface, StepContext, WaitForCallbackContext, WaitForConditionCheckContext
from durable.waits import WaitForConditionConfig

_CALLBACK_ERRORS: dict[str, type[CallbackError]] = {
    cls.__name__: cls for cls in (CallbackError, CallbackExternalError, CallbackTimeoutError, CallbackSubmitterError)
}

T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")
R = TypeVar("R")

# A callback's result reaches the handler as the raw text sent, unless its config gives a serdes.
PASS_THROUGH_SERDES = PassThroughSerDes()


def durable_step(func: Callable[Concatenate[StepContext, P], T]) -> Callable[P, Callable[[StepContext], T]]:
    """Turn `f(step_context, *args)` into `f(*args)`, a step body named after `f`."""

    @functools.wraps(func)
    def bind(*args: P.args, **kwargs: P.kwargs) -> Callable[[StepContext], T]:
        def body(step_context: StepContext) -> T:
            return func(step_context, *args, **kwargs)

        body._original_name = func.__name__  # type: ignore[attr-defined]
        return body

    return bind


def durable_with_child_context(
    func: Callable[Concatenate[DurableContext, P], T],
) -> Callable[P, Callable[[DurableContext], T]]:
    """Turn `f(context, *args)` into `f(*args)`, a child-context function named after `f`."""

    @functools.wraps(func)
    def bind(*args: P.args, **kwargs: P.kwargs) -> Callable[[DurableContext], T]:
        def body(context: DurableContext) -> T:
            return func(context, *args, **kwargs)

        body._original_name = func.__name__  # type: ignore[attr-defined]
        return body

    return bind


def durable_parallel_branch(
    name: str | None = None,
) -> Callable[[Callable[Concatenate[DurableContext, P], T]], Callable[P, ParallelBranch[T]]]:
    """Turn `f(context, *args)` into `f(*args)`, a branch for `context.parallel` named `name`
    (default "parallel-branch-<i>")."""

    def decorate(func: Callable[Concatenate[DurableContext, P], T]) -> Callable[P, ParallelBranch[T]]:
        @functools.wraps(func)
        def bind(*args: P.args, **kwargs: P.kwargs) -> ParallelBranch[T]:
            def body(context: DurableContext) -> T:
                return func(context, *args, **kwargs)

            return ParallelBranch(func=body, name=name)

        return bind

    return decorate


def durable_wait_for_callback(
    func: Callable[Concatenate[str, WaitForCallbackContext, P], T],
) -> Callable[P, Callable[[str, WaitForCallbackContext], T]]:
    """Turn `f(callback_id, context, *args)` into `f(*args)`, a wait_for_callback submitter named
    after `f`."""

    @functools.wraps(func)
    def bind(*args: P.args, **kwargs: P.kwargs) -> Callable[[str, WaitForCallbackContext], T]:
        def submitter(callback_id: str, context: WaitForCallbackContext) -> T:
            return func(callback_id, context, *args, **kwargs)

        submitter._original_name = func.__name__  # type: ignore[attr-defined]
        return submitter

    return bind


@dataclass(frozen=True)
class ExecutionContext:
    """What a handler may know of its execution: its id (the official SDK's ARN)."""

    durable_execution_arn: str


# What a step without a config runs with: one instance (nothing in the engine changes a config),
# not one made per step, which a replay of many steps paid for each.
_DEFAULT_STEP_CONFIG = StepConfig()


def _step_name(name: str | None, func: Callable[..., Any]) -> str | None:
    return name or getattr(func, "_original_name", None)


class DurableContext:
    """The handle a durable handler uses for every operation; one per (child) context."""

    def __init__(
        self,
        state: ExecutionState,
        parent_id: str | None = None,
        logger_: Logger | None = None,
        step_id_prefix: str | None = None,
    ) -> None:
        self.state = state
        self.execution_context = ExecutionContext(durable_execution_arn=state.execution_id)
        self._parent_id = parent_id
        # Ids derive from the prefix; it differs from the parent only in a virtual context (a
        # FLAT item, say: ids from the item's id, operations recorded under the batch).
        self._step_id_prefix = step_id_prefix if step_id_prefix is not None else parent_id
        self._counter = 0
        # A logger set with set_logger is inherited by the child contexts made after it.
        self._custom_logger = logger_
        self._logger: ReplayAwareLogger = logger_ or ReplayAwareLogger(
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

    def set_logger(self, new_logger: LoggerInterface) -> None:
        """Log through `new_logger` (any logger with debug/info/warning/error/exception), still
        silent while replaying and tagged with the execution and this context."""
        self._custom_logger = Logger.from_log_info(
            new_logger, LogInfo(self.state, parent_id=self._parent_id), self.state.is_replaying
        )
        self._logger = self._custom_logger

    def is_replaying(self) -> bool:
        return self.state.is_replaying()

    @property
    def is_virtual(self) -> bool:
        """True in a context that records nothing of itself (an item of a FLAT map or parallel,
        or a child run with ChildConfig(is_virtual=True))."""
        return self._step_id_prefix != self._parent_id

    def _next_operation_id(self) -> str:
        self._counter += 1
        return operation_id(self._step_id_prefix, self._counter)

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
            config or _DEFAULT_STEP_CONFIG,
            self._logger,
        )
        return op.run(func)

    def wait(self, duration: Duration, name: str | None = None) -> None:
        """Suspend the execution for `duration` (at least 1 second); nothing runs meanwhile."""
        run_wait(self.state, self._next_operation_id(), self._parent_id, duration.to_seconds(), name)

    def create_callback(self, name: str | None = None, config: CallbackConfig | None = None) -> Callback[Any]:
        """Create a callback whose id the outside world completes; `.result()` waits for it."""
        return create_callback(self.state, self._next_operation_id(), self._parent_id, name, config or CallbackConfig())

    def run_in_child_context(
        self, func: Callable[[DurableContext], T], name: str | None = None, config: ChildConfig[Any] | None = None
    ) -> T:
        """Run `func` with a context of its own; its result is checkpointed as one operation.

        Raises ChildContextError when `func` fails (its `error_type` names the inner error).
        With `ChildConfig(is_virtual=True)` nothing of the context itself is recorded: its
        operations take this context's parent, and a replay runs `func` again.
        """
        config = config or ChildConfig()
        operation_id, step_name = self._next_operation_id(), _step_name(name, func)
        if config.is_virtual:
            return run_virtual_context(
                self.state, operation_id, self._parent_id, step_name, config.serdes, func, self._child
            )
        return run_child(self.state, operation_id, self._parent_id, step_name, config, func, self._child)

    def map(
        self,
        inputs: Sequence[U],
        func: Callable[[DurableContext, U, int, Sequence[U]], T],
        name: str | None = None,
        config: MapConfig[U] | None = None,
    ) -> BatchResult[T]:
        """Run `func(context, item, index, inputs)` for each input, concurrently, each in a child
        context of its own; returns every started item's outcome. Raises ValidationError for a
        config that cannot run; items' failures are in the result (`throw_if_error()`)."""
        config = config or MapConfig()
        check_map(inputs, config)
        operation_id, name = self._next_operation_id(), _step_name(name, func)
        return run_map(self.state, operation_id, self._parent_id, name, inputs, func, config, self._child)

    def parallel(
        self,
        functions: Sequence[Callable[[DurableContext], T] | ParallelBranch[T]],
        name: str | None = None,
        config: ParallelConfig | None = None,
    ) -> BatchResult[T]:
        """Run each function with a child context of its own, concurrently; returns every
        started branch's outcome. Raises ValidationError for a config that cannot run."""
        config = config or ParallelConfig()
        check_parallel(functions, config)
        operation_id = self._next_operation_id()
        return run_parallel(self.state, operation_id, self._parent_id, name, functions, config, self._child)

    def _child(self, operation_id: str, *, parent_id: str | None = None, virtual: bool = False) -> DurableContext:
        """The context of child `operation_id`; a virtual one's operations take their ids from
        `operation_id` but record `parent_id` as their parent."""
        if not virtual:
            return DurableContext(self.state, parent_id=operation_id, logger_=self._custom_logger)
        return DurableContext(self.state, parent_id=parent_id, logger_=self._custom_logger, step_id_prefix=operation_id)

    def wait_for_callback(
        self,
        submitter: Callable[[str, WaitForCallbackContext], Any],
        name: str | None = None,
        config: WaitForCallbackConfig | None = None,
    ) -> Any:
        """Create a callback, hand its id to `submitter` (run as a step), and wait for the result.

        Raises CallbackError, CallbackTimeoutError, or CallbackSubmitterError if the submitter fails.
        """
        step_name = _step_name(name, submitter)
        prefix = f"{step_name} " if step_name else ""
        # Its children are named after it: a name that fits may still make names that do not.
        check_name(f"{prefix}create callback id", "the wait_for_callback operation (with its children's suffix)")

        def in_child(context: DurableContext) -> Any:
            callback = context.create_callback(name=f"{prefix}create callback id", config=config)

            def submit(step: StepContext) -> Any:
                return submitter(callback.callback_id, WaitForCallbackContext(logger=step.logger))

            step_config = StepConfig(retry_strategy=config.retry_strategy, serdes=config.serdes) if config else None
            context.step(submit, name=f"{prefix}submitter", config=step_config)
            return callback.result()

        try:
            return self.run_in_child_context(
                in_child, step_name, ChildConfig(sub_type=OperationSubType.WAIT_FOR_CALLBACK.value)
            )
        except ChildContextError as exc:
            inner = exc.error_type or ""
            if inner in _CALLBACK_ERRORS:
                error: CallbackError = _CALLBACK_ERRORS[inner](exc.message, inner, exc.data, exc.stack_trace)
            elif inner == "StepError":
                error = CallbackSubmitterError(
                    exc.message or "callback submitter failed", "CallbackSubmitterError", exc.data, exc.stack_trace
                )
            else:
                raise
            # The unit that failed is the whole wait_for_callback (see failure_path).
            error.operation_id = exc.operation_id
            raise error from None

    def wait_for_condition(
        self,
        check: Callable[[T, WaitForConditionCheckContext], T],
        config: WaitForConditionConfig[T],
        name: str | None = None,
    ) -> T:
        """Poll `check` on a state kept in the journal until `config.wait_strategy` says stop;
        the execution suspends between polls. Returns the last state.

        Raises WaitForConditionError when the check fails or the strategy runs out of attempts.
        """
        if check is None:
            raise ValidationError("`check` is required for wait_for_condition")
        if not config:
            raise ValidationError("`config` is required for wait_for_condition")
        return run_wait_for_condition(
            self.state, self._next_operation_id(), self._parent_id, name, check, config, self._logger
        )

    def invoke(
        self,
        function_name: str,
        payload: Any,
        name: str | None = None,
        config: InvokeConfig[Any, R] | None = None,
    ) -> R:
        """Start the durable function registered as `function_name` with `payload` as a child
        execution, suspend until it ends, and return its result.

        Raises InvokeError when it fails, times out (ChainedInvoke.Timeout) or is stopped, or
        when no function is registered under that name (ResourceNotFoundException).
        """
        return run_invoke(
            self.state,
            self._next_operation_id(),
            self._parent_id,
            name,
            function_name,
            payload,
            config or InvokeConfig(),
        )

    def race(
        self,
        branches: Branches[DurableContext, T],
        name: str | None = None,
        config: RaceConfig | None = None,
    ) -> RaceResult[T]:
        """Run the branches (functions of a child context; a mapping names them) side by side:
        the first to return wins, the others are cancelled. Ours, not the official SDK's.

        Returns RaceResult(index, name, value). Raises ChildContextError if the first branch to
        settle raised (its `error_type` names the error), and ValidationError with no branch.
        """
        named = branch_list(branches)
        operation_id = self._next_operation_id()
        return run_race(self.state, operation_id, self._parent_id, name, named, config or RaceConfig(), self._child)
