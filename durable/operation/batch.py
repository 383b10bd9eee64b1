"""The operation shared by map and parallel: a CONTEXT operation (sub type Map or Parallel)
with one child context per item (MapIteration or ParallelBranch), keyed by the item's index,
or with NestingType.FLAT none: each item in a virtual context (see `durable.operation.flat`).

The batch's own row stores the official summary envelope (the completion record, see
`durable.concurrency.models`), not the items' results: each result is stored once, in its
item's row. The official SDK stores the whole BatchResult when it is small and the envelope
(with ReplayChildren) when it is not; storing the envelope always keeps a 1,000-item map
from writing every result twice. So a completed batch replays as the official one replays a
large one: items rebuilt from their rows by the record, whatever order they finished in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from durable import events
from durable.batch_config import BatchItemStatus, CompletionConfig, NestingType, SummaryGenerator
from durable.concurrency.executor import ConcurrentExecutor, branch_error
from durable.concurrency.models import (
    BatchItem,
    BatchResult,
    CompletionRecord,
    Executable,
    envelope_summary_generator,
)
from durable.config import ChildConfig
from durable.errors import ErrorObject
from durable.exceptions import FATAL, ExecutionError, NonDeterministicExecutionError, SerDesError, ValidationError
from durable.identifier import operation_id as derive_id
from durable.operation.child import _recorded_error, run_child
from durable.operation.flat import check_flat_item, run_virtual_child
from durable.serdes import SerDes, deserialize, serialize
from durable.state import ExecutionState, OperationRecord, OperationStatus, OperationType
from durable.storable import unstorable_reason, utf8_size

R = TypeVar("R")
C = TypeVar("C")  # the context type (DurableContext)


def check_batch(items: Any, max_concurrency: int | None, completion_config: CompletionConfig, nesting: Any) -> int:
    """Refuse a batch that cannot run, before it takes an operation id; returns its size.

    Raises ValidationError.
    """
    if not isinstance(items, Sequence):
        raise ValidationError(f"map and parallel take a sequence (a list or a tuple), not a {type(items).__name__}")
    if not isinstance(nesting, NestingType):
        raise ValidationError(f"nesting_type must be NestingType.NESTED or NestingType.FLAT, not {nesting!r}")
    completion_config._validate_for_total(len(items))
    return len(items)


class Batch:
    """One map or parallel in one invocation: runs it, or rebuilds it from the journal."""

    def __init__(
        self,
        state: ExecutionState,
        operation_id: str,
        parent_id: str | None,
        name: str | None,
        *,
        sub_type: str,
        item_sub_type: str,
        item_prefix: str,
        result_type: str,
        max_concurrency: int | None,
        completion_config: CompletionConfig,
        serdes: SerDes[Any] | None,
        item_serdes: SerDes[Any] | None,
        summary_generator: SummaryGenerator | None,
        make_context: Callable[..., C],
        nesting: NestingType = NestingType.NESTED,
    ) -> None:
        self.state = state
        self.operation_id = operation_id
        self.parent_id = parent_id
        self.name = name
        self.sub_type = sub_type
        self.item_sub_type = item_sub_type
        self.item_prefix = item_prefix
        self.max_concurrency = max_concurrency
        self.completion_config = completion_config
        self.serdes = serdes
        self.item_serdes = item_serdes or serdes  # the batch's serdes serves its items too, unless told
        self.envelope = envelope_summary_generator(result_type, summary_generator)
        self.make_context: Callable[..., Any] = make_context
        self.flat = nesting is NestingType.FLAT
        self.executor: ConcurrentExecutor[Any, Any] | None = None

    def item_id(self, index: int) -> str:
        return derive_id(self.operation_id, index)

    def item_name(self, executable: Executable[Any]) -> str:
        return executable.name if executable.name is not None else f"{self.item_prefix}{executable.index}"

    def run(self, make_executables: Callable[[], list[Executable[Callable[[Any], Any]]]]) -> BatchResult[Any]:
        """Run the batch (or replay it) and return its result.

        Raises ChildContextError if the batch itself failed (an item_namer or a serdes raised);
        items' failures are in the result (see BatchResult.throw_if_error).
        """
        state = self.state
        record = state.visit(self.operation_id, OperationType.CONTEXT, self.sub_type, self.name, self.parent_id)
        if record is not None and record.status is OperationStatus.FAILED:
            raise _recorded_error(record.error, self.operation_id)
        if record is not None and record.status is OperationStatus.SUCCEEDED:
            return self._round_trip(self._with_ids(self._rebuild(make_executables(), record.result)))
        if record is None:
            record = OperationRecord(
                operation_id=self.operation_id,
                type=OperationType.CONTEXT,
                sub_type=self.sub_type,
                name=self.name,
                status=OperationStatus.STARTED,
                parent_id=self.parent_id,
                started_at=state.now(),
            )
            state.checkpoint(record, [events.context_started()], sync=False)
        try:
            executables = make_executables()
            self.executor = ConcurrentExecutor(
                state,
                self.operation_id,
                executables,
                self.max_concurrency,
                self.completion_config,
                run_item=self._run_item,
                replayed=self._replayed,
                item_id=self.item_id,
            )
            result = self._round_trip(self._with_ids(self.executor.execute()))
            payload = self._payload(result)
        except BaseException as exc:
            if isinstance(exc, (*FATAL, ExecutionError)) or state.halted is not None:
                raise
            record.status = OperationStatus.FAILED
            record.error = ErrorObject.from_exception(exc).to_dict()
            record.ended_at = state.now()
            state.checkpoint(record, [events.context_failed(record.error)])
            raise _recorded_error(record.error, self.operation_id) from exc
        record.status = OperationStatus.SUCCEEDED
        record.result = payload
        record.ended_at = state.now()
        state.checkpoint(record, [events.context_succeeded()])
        return result

    def _run_item(self, executable: Executable[Callable[[Any], Any]]) -> Any:
        """An item, in its child context (on the item's thread), or in a virtual one if FLAT."""
        item_id = self.item_id(executable.index)
        if self.flat:
            check_flat_item(self.state, item_id, executable.index, self.operation_id)
            return run_virtual_child(
                self.state, item_id, self.operation_id, self.item_serdes, executable.func, self.make_context
            )
        config: ChildConfig[Any] = ChildConfig(serdes=self.item_serdes, sub_type=self.item_sub_type)
        name = self.item_name(executable)
        return run_child(self.state, item_id, self.operation_id, name, config, executable.func, self.make_context)

    def _replayed(self, executable: Executable[Any]) -> BatchItem[Any] | None:
        """The item's end as the journal recorded it, or None if it has not ended (always for a
        FLAT item: nothing records its end, its body runs again to find it)."""
        item_id = self.item_id(executable.index)
        if self.flat:
            check_flat_item(self.state, item_id, executable.index, self.operation_id)
            return None
        found = self.state.get(item_id)
        if found is None or found.status not in (OperationStatus.SUCCEEDED, OperationStatus.FAILED):
            return None
        record = self.state.visit(
            item_id, OperationType.CONTEXT, self.item_sub_type, self.item_name(executable), self.operation_id
        )
        assert record is not None
        if record.status is OperationStatus.FAILED:
            return BatchItem(executable.index, BatchItemStatus.FAILED, error=ErrorObject.from_dict(record.error))
        value = None
        if record.result is not None:
            value = deserialize(self.item_serdes, record.result, item_id, self.state.execution_id)
        return BatchItem(executable.index, BatchItemStatus.SUCCEEDED, value)

    def _rebuild(self, executables: list[Executable[Any]], payload: str | None) -> BatchResult[Any]:
        """A completed batch's result, from its record and its items' rows."""
        record = CompletionRecord.from_summary_payload(payload)
        items: list[BatchItem[Any]] = []
        if record is None:
            # No record (not written by this engine): every item as its row says.
            for executable in executables:
                ended = self._replayed(executable)
                items.append(ended or BatchItem(executable.index, BatchItemStatus.STARTED))
            return BatchResult.from_items(items, self.completion_config)
        for executable in executables[: record.started_total]:
            if executable.index in record.started_indexes:
                self._check_started(executable)
                items.append(BatchItem(executable.index, BatchItemStatus.STARTED))
                continue
            ended = self._rederived(executable) if self.flat else self._replayed(executable)
            if ended is None:
                raise NonDeterministicExecutionError(
                    f"batch {self.operation_id[:12]} recorded item {executable.index} as ended, but the journal "
                    "holds no end for its context: the journal was changed under the execution",
                    self.item_id(executable.index),
                )
            items.append(ended)
        return BatchResult(items, record.completion_reason)

    def _rederived(self, executable: Executable[Callable[[Any], Any]]) -> BatchItem[Any]:
        """A FLAT item the record says ended: its body again, over its operations' checkpoints,
        on this thread. Raises what ends the invocation (NonDeterministicExecutionError...)."""
        try:
            value = self._run_item(executable)
        except ExecutionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the item's failure, as the first run saw it
            return BatchItem(executable.index, BatchItemStatus.FAILED, error=branch_error(exc))
        return BatchItem(executable.index, BatchItemStatus.SUCCEEDED, value)

    def _check_started(self, executable: Executable[Any]) -> None:
        item_id = self.item_id(executable.index)
        if self.flat:
            check_flat_item(self.state, item_id, executable.index, self.operation_id)
        elif self.state.get(item_id) is not None:
            self.state.visit(
                item_id, OperationType.CONTEXT, self.item_sub_type, self.item_name(executable), self.operation_id
            )

    def _with_ids(self, result: BatchResult[Any]) -> BatchResult[Any]:
        items = [replace(item, operation_id=self.item_id(item.index)) for item in result.all]
        return BatchResult(items, result.completion_reason)

    def _round_trip(self, result: BatchResult[Any]) -> BatchResult[Any]:
        """Through the batch's serdes, if it has one: the first run returns what a replay will."""
        if self.serdes is None:
            return result
        text = serialize(self.serdes, result, self.operation_id, self.state.execution_id)
        value: BatchResult[Any] = deserialize(self.serdes, text, self.operation_id, self.state.execution_id)
        return value

    def _payload(self, result: BatchResult[Any]) -> str:
        """The envelope the batch's row stores. Raises SerDesError if it cannot be stored."""
        label = f"{self.sub_type.lower()} {self.name!r}" if self.name else self.operation_id[:12]
        payload = self.envelope(result)
        reason = unstorable_reason(payload)
        if reason:
            raise SerDesError(f"the summary of {label} cannot be stored: {reason}", "SerDesError")
        size = utf8_size(payload)
        if size > self.state.max_result_bytes:
            raise SerDesError(
                f"the summary of {label} is {size} bytes; the limit is {self.state.max_result_bytes} bytes "
                "(a summary_generator must return less)",
                "SerDesError",
            )
        return payload
