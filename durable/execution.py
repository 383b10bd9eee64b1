"""`@durable_execution`: registers a handler as a durable function the workers can run."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from durable.config import MAX_DURATION_SECONDS, Duration
from durable.exceptions import UnknownFunctionError, ValidationError
from durable.invocation import (
    LAMBDA_RESPONSE_SIZE_LIMIT,
    DurableExecutionInvocationInput,
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
    handle_checkpoint_error,
)
from durable.lambda_service import InvocationStatus

# The official module offers these here too; code written for it imports them from here.
__all__ = [
    "LAMBDA_RESPONSE_SIZE_LIMIT",
    "DurableExecutionInvocationInput",
    "DurableExecutionInvocationInputWithClient",
    "DurableFunction",
    "InitialExecutionState",
    "InvocationStatus",
    "durable_execution",
    "get_function",
    "handle_checkpoint_error",
    "register",
    "validate_retention",
    "validate_timeout",
]

if TYPE_CHECKING:
    from durable.context import DurableContext

Handler = Callable[[Any, "DurableContext"], Any]


@dataclass(frozen=True)
class DurableFunction:
    """A registered handler. Calling it calls the handler, which unit tests may do directly."""

    name: str
    func: Handler
    execution_timeout: Duration | None = None
    invocation_timeout: Duration | None = None
    # An event for each operation that completes (None: settings.DURABLE["OPERATION_EVENTS"]).
    operation_events: bool | None = None
    # How long its ended executions are kept (whole days; None: the settings' default).
    retention_period: Duration | None = None

    def __call__(self, event: Any, context: DurableContext) -> Any:
        return self.func(event, context)


_registry: dict[str, DurableFunction] = {}


def validate_timeout(timeout: Duration | int) -> Duration:
    """Check an execution timeout is between 1 second and 366 days; raises ValidationError."""
    duration = timeout if isinstance(timeout, Duration) else Duration(int(timeout))
    if not 1 <= duration.seconds <= MAX_DURATION_SECONDS:
        raise ValidationError(
            f"execution timeout must be between 1 second and 366 days, got {duration.seconds} seconds"
        )
    return duration


# Lambda's RetentionPeriodInDays: 1 to 90 days after an execution ends.
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 90
DAY_SECONDS = 86400


def validate_retention(period: Duration | int) -> Duration:
    """Check a retention period: an int of days or a Duration of whole days, 1 to 90 days (Lambda's
    RetentionPeriodInDays); raises ValidationError."""
    if isinstance(period, Duration):
        if period.seconds % DAY_SECONDS:
            raise ValidationError(f"retention period must be whole days, got {period.seconds} seconds")
        days = period.seconds // DAY_SECONDS
    elif isinstance(period, int) and not isinstance(period, bool):
        days = period
    else:
        raise ValidationError(
            f"retention period must be an int of days or a Duration, got {type(period).__qualname__} {period!r}"
        )
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ValidationError(
            f"retention period must be between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days, got {days} days"
        )
    return Duration(days * DAY_SECONDS)


@overload
def durable_execution(func: Handler, /) -> DurableFunction: ...
@overload
def durable_execution(
    func: None = None,
    /,
    *,
    name: str | None = None,
    execution_timeout: Duration | int | None = None,
    invocation_timeout: Duration | int | None = None,
    operation_events: bool | None = None,
    retention_period: Duration | int | None = None,
) -> Callable[[Handler], DurableFunction]: ...


def durable_execution(
    func: Handler | None = None,
    /,
    *,
    name: str | None = None,
    execution_timeout: Duration | int | None = None,
    invocation_timeout: Duration | int | None = None,
    operation_events: bool | None = None,
    retention_period: Duration | int | None = None,
) -> DurableFunction | Callable[[Handler], DurableFunction]:
    """Register `func(event, context)` under `name` (default `module.qualname`).

    `execution_timeout` bounds the whole execution (1 s to 366 days); `invocation_timeout`
    bounds one invocation (default settings.DURABLE["INVOCATION_TIMEOUT"], 15 minutes);
    `retention_period` keeps its ended executions that long (days, or a Duration of whole days;
    1 to 90; default settings.DURABLE["RETENTION_DAYS"]); `operation_events`: send an event to the
    event sinks for each operation that completes (default settings.DURABLE["OPERATION_EVENTS"],
    off). Raises ValidationError.
    """
    retention = None if retention_period is None else validate_retention(retention_period)

    def register(f: Handler) -> DurableFunction:
        fn = DurableFunction(
            name=name or f"{f.__module__}.{f.__qualname__}",
            func=f,
            execution_timeout=validate_timeout(execution_timeout) if execution_timeout else None,
            invocation_timeout=validate_timeout(invocation_timeout) if invocation_timeout else None,
            operation_events=operation_events,
            retention_period=retention,
        )
        _registry[fn.name] = fn
        return fn

    return register(func) if func is not None else register


def register(fn: DurableFunction) -> DurableFunction:
    """(Re-)register a durable function, e.g. a fixed version of its code before a redrive."""
    _registry[fn.name] = fn
    return fn


def registered(name: str) -> DurableFunction | None:
    """The function registered under `name` in this process, None if none is (no import)."""
    return _registry.get(name)


def get_function(name: str) -> DurableFunction:
    """Find a registered function, importing its module if the name is `module.qualname`.

    Raises UnknownFunctionError.
    """
    module = name
    while name not in _registry and "." in module:
        # `module.qualname` names its module; a name that is itself a module path works too.
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
        module = module.rpartition(".")[0]
    try:
        return _registry[name]
    except KeyError:
        raise UnknownFunctionError(
            f"no durable function is registered under {name!r}; is its module imported by "
            "the worker (an app's workflows.py is imported automatically)?"
        ) from None
