"""context.parallel: several functions of a context, each in a child context of its own.

A branch is a callable taking a context, or a ParallelBranch that also names it; the batch
is one operation of sub type Parallel with one ParallelBranch per function, run concurrently
(see `durable.operation.batch` and `durable.concurrency.executor`); with NestingType.FLAT,
no ParallelBranch is recorded (see `durable.operation.flat`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from durable.batch_config import ParallelBranch, ParallelConfig
from durable.concurrency.models import BatchResult, Executable
from durable.exceptions import ValidationError
from durable.operation.batch import Batch, check_batch
from durable.state import ExecutionState

C = TypeVar("C")  # the context type (DurableContext)

PARALLEL = "Parallel"
PARALLEL_BRANCH = "ParallelBranch"


def check_parallel(functions: Sequence[Any], config: ParallelConfig) -> None:
    """Raises ValidationError for a parallel that cannot run (before it takes an operation id)."""
    check_batch(functions, config.max_concurrency, config.completion_config, config.nesting_type)
    for index, function in enumerate(functions):
        if not callable(function):
            raise ValidationError(f"branch {index} of a parallel is a {type(function).__name__}, not a callable")


def run_parallel(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    functions: Sequence[Callable[[C], Any] | ParallelBranch[Any]],
    config: ParallelConfig,
    make_context: Callable[..., C],
) -> BatchResult[Any]:
    """Run (or replay) a parallel. Raises ChildContextError if the parallel itself failed (its
    serdes raised), or what ends the invocation (a suspension, a lost lease...)."""

    def executables() -> list[Executable[Callable[[C], Any]]]:
        return [
            Executable(index, function, function.name if isinstance(function, ParallelBranch) else None)
            for index, function in enumerate(functions)
        ]

    batch = Batch(
        state,
        operation_id,
        parent_id,
        name,
        sub_type=PARALLEL,
        item_sub_type=PARALLEL_BRANCH,
        item_prefix="parallel-branch-",
        result_type="ParallelResult",
        max_concurrency=config.max_concurrency,
        completion_config=config.completion_config,
        serdes=config.serdes,
        item_serdes=config.item_serdes,
        summary_generator=config.summary_generator,
        make_context=make_context,
        nesting=config.nesting_type,
    )
    return batch.run(executables)
