"""context.map: a function applied to each input, each call in a child context of its own.

The function receives `(context, item, index, inputs)`, as the official SDK's does; items
run concurrently (see `durable.concurrency.executor`) and the batch is one operation of sub
type Map with one MapIteration per input (see `durable.operation.batch`), or none with
NestingType.FLAT (see `durable.operation.flat`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from durable.batch_config import MapConfig
from durable.concurrency.models import BatchResult, Executable
from durable.operation.batch import Batch, check_batch
from durable.state import ExecutionState

T = TypeVar("T")
C = TypeVar("C")  # the context type (DurableContext)

MAP = "Map"
MAP_ITERATION = "MapIteration"


def check_map(inputs: Sequence[Any], config: MapConfig[Any]) -> None:
    """Raises ValidationError for a map that cannot run (before it takes an operation id)."""
    check_batch(inputs, config.max_concurrency, config.completion_config, config.nesting_type)


def run_map(
    state: ExecutionState,
    operation_id: str,
    parent_id: str | None,
    name: str | None,
    inputs: Sequence[T],
    func: Callable[[C, T, int, Sequence[T]], Any],
    config: MapConfig[T],
    make_context: Callable[..., C],
) -> BatchResult[Any]:
    """Run (or replay) a map. Raises ChildContextError if the map itself failed (its item_namer
    or serdes raised), or what ends the invocation (a suspension, a lost lease...)."""

    def bind(index: int, item: T) -> Callable[[C], Any]:
        return lambda context: func(context, item, index, inputs)

    def executables() -> list[Executable[Callable[[C], Any]]]:
        namer = config.item_namer
        return [
            Executable(index, bind(index, item), namer(item, index) if namer else None)
            for index, item in enumerate(inputs)
        ]

    batch = Batch(
        state,
        operation_id,
        parent_id,
        name,
        sub_type=MAP,
        item_sub_type=MAP_ITERATION,
        item_prefix="map-item-",
        result_type="MapResult",
        max_concurrency=config.max_concurrency,
        completion_config=config.completion_config,
        serdes=config.serdes,
        item_serdes=config.item_serdes,
        summary_generator=config.summary_generator,
        make_context=make_context,
        nesting=config.nesting_type,
    )
    return batch.run(executables)
