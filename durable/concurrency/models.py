"""What a map or parallel returns (BatchResult and its items), when it completes (the
completion policy), and the record of that decision the journal keeps.

The batch's CONTEXT operation stores the official SDK's summary envelope: the completion
reason, how many items were started, which of them were still running (or which had ended),
and the counts. Each item's result is stored once, in its own child context; a replay rebuilds
the BatchResult from those and this record, so it never depends on which item finished first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, NoReturn, TypeVar, cast

from durable.batch_config import (
    BatchItemStatus,
    CompletionConfig,
    CompletionDecision,
    CompletionItemStatus,
    CompletionOutcome,
    CompletionStatus,
    SummaryGenerator,
)
from durable.errors import ErrorObject
from durable.exceptions import ChildContextError, DurableOperationError, SerDesError

R = TypeVar("R")
C = TypeVar("C")


class CompletionReason(Enum):
    ALL_COMPLETED = "ALL_COMPLETED"
    MIN_SUCCESSFUL_REACHED = "MIN_SUCCESSFUL_REACHED"
    FAILURE_TOLERANCE_EXCEEDED = "FAILURE_TOLERANCE_EXCEEDED"
    CUSTOM_COMPLETION_SUCCEEDED = "CUSTOM_COMPLETION_SUCCEEDED"
    CUSTOM_COMPLETION_FAILED = "CUSTOM_COMPLETION_FAILED"


class BatchCompletionError(DurableOperationError):
    """Raised by `throw_if_error` when a custom decision completed the batch as failed while
    no item failed (a quorum that could not be met, say)."""

    def __init__(
        self,
        completion_reason: CompletionReason = CompletionReason.CUSTOM_COMPLETION_FAILED,
        message: str | None = None,
        error_type: str | None = None,
        data: str | None = None,
        stack_trace: list[str] | None = None,
    ) -> None:
        text = message or f"the batch was completed as failed by should_complete ({completion_reason.value})"
        super().__init__(text, error_type, data, stack_trace)
        self.completion_reason = completion_reason


@dataclass(frozen=True)
class CompletionPolicy:
    """Decides, from the counts so far, whether a batch of `total` items is complete and why.

    A `should_complete` predicate, when given, alone decides early completion; with no
    criterion at all, one failure is already too many.
    """

    total: int
    min_successful: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: int | float | None = None
    should_complete: Callable[[CompletionStatus], CompletionDecision] | None = None

    @classmethod
    def from_config(cls, total: int, config: CompletionConfig | None) -> CompletionPolicy:
        if config is None:
            return cls(total)
        return cls(
            total,
            config.min_successful,
            config.tolerated_failure_count,
            config.tolerated_failure_percentage,
            config.should_complete,
        )

    @property
    def has_criteria(self) -> bool:
        thresholds = (self.min_successful, self.tolerated_failure_count, self.tolerated_failure_percentage)
        return any(t is not None for t in thresholds)

    def is_tolerance_exceeded(self, failed: int) -> bool:
        if self.should_complete is not None:
            return False
        if not self.has_criteria:
            return failed > 0
        if self.tolerated_failure_count is not None and failed > self.tolerated_failure_count:
            return True
        if self.tolerated_failure_percentage is not None and self.total > 0:
            return failed * 100 / self.total > self.tolerated_failure_percentage
        return False

    def should_continue(self, failed: int) -> bool:
        """Whether more items may start."""
        return not self.is_tolerance_exceeded(failed)

    def evaluate(
        self, succeeded: int, failed: int, items: tuple[CompletionItemStatus, ...] = ()
    ) -> CompletionDecision | None:
        """The predicate's decision on this progress (it runs once per change), or None."""
        if self.should_complete is None:
            return None
        return self.should_complete(CompletionStatus(succeeded, failed, succeeded + failed, self.total, items))

    def is_complete(self, succeeded: int, failed: int, decision: CompletionDecision | None = None) -> bool:
        if decision is not None and decision.complete:
            return True
        if succeeded + failed >= self.total:
            return True
        return self.min_successful is not None and succeeded >= self.min_successful

    def reason(self, succeeded: int, failed: int, decision: CompletionDecision | None = None) -> CompletionReason:
        if self.is_tolerance_exceeded(failed):
            return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
        if decision is not None and decision.complete:
            if decision.outcome is CompletionOutcome.FAILED:
                return CompletionReason.CUSTOM_COMPLETION_FAILED
            return CompletionReason.CUSTOM_COMPLETION_SUCCEEDED
        if succeeded + failed >= self.total:
            return CompletionReason.ALL_COMPLETED
        if self.min_successful is not None and succeeded >= self.min_successful:
            return CompletionReason.MIN_SUCCESSFUL_REACHED
        return CompletionReason.ALL_COMPLETED


@dataclass(frozen=True)
class BatchItem(Generic[R]):
    """One item of a batch: SUCCEEDED with its result, FAILED with its error, or STARTED (it
    was still running or suspended when the batch completed)."""

    index: int
    status: BatchItemStatus
    result: R | None = None
    error: ErrorObject | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status.value,
            "result": self.result,
            "error": self.error.to_dict() if self.error else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchItem[R]:
        error = data.get("error")
        status = BatchItemStatus(data["status"])
        return cls(data["index"], status, data.get("result"), ErrorObject.from_dict(error) if error else None)


@dataclass(frozen=True)
class BatchResult(Generic[R]):
    """What `context.map` and `context.parallel` return: every started item, in index order
    (items never started are left out), and why the batch completed."""

    all: list[BatchItem[R]]
    completion_reason: CompletionReason

    @classmethod
    def from_dict(cls, data: dict[str, Any], completion_config: CompletionConfig | None = None) -> BatchResult[R]:
        items: list[BatchItem[R]] = [BatchItem.from_dict(item) for item in data["all"]]
        reason = data.get("completionReason")
        if reason is None:
            return cls.from_items(items, completion_config)
        return cls(items, CompletionReason(reason))

    @classmethod
    def from_items(cls, items: list[BatchItem[R]], completion_config: CompletionConfig | None = None) -> BatchResult[R]:
        """A result whose reason is inferred from `items` (exact only when every item is there)."""
        succeeded = sum(1 for item in items if item.status is BatchItemStatus.SUCCEEDED)
        failed = sum(1 for item in items if item.status is BatchItemStatus.FAILED)
        policy = CompletionPolicy.from_config(len(items), completion_config)
        snapshot = tuple(CompletionItemStatus(item.index, status=item.status) for item in items)
        return cls(items, policy.reason(succeeded, failed, policy.evaluate(succeeded, failed, snapshot)))

    def to_dict(self) -> dict[str, Any]:
        return {"all": [item.to_dict() for item in self.all], "completionReason": self.completion_reason.value}

    def succeeded(self) -> list[BatchItem[R]]:
        return [item for item in self.all if item.status is BatchItemStatus.SUCCEEDED]

    def failed(self) -> list[BatchItem[R]]:
        return [item for item in self.all if item.status is BatchItemStatus.FAILED]

    def started(self) -> list[BatchItem[R]]:
        return [item for item in self.all if item.status is BatchItemStatus.STARTED]

    @property
    def status(self) -> BatchItemStatus:
        """FAILED if an item failed or a custom decision said so; SUCCEEDED otherwise."""
        if self.completion_reason is CompletionReason.CUSTOM_COMPLETION_FAILED:
            return BatchItemStatus.FAILED
        if self.completion_reason is CompletionReason.CUSTOM_COMPLETION_SUCCEEDED:
            return BatchItemStatus.SUCCEEDED
        return BatchItemStatus.FAILED if self.has_failure else BatchItemStatus.SUCCEEDED

    @property
    def has_failure(self) -> bool:
        return any(item.status is BatchItemStatus.FAILED for item in self.all)

    def throw_if_error(self) -> None:
        """Raise the first failed item's error as a ChildContextError (its `error_type` names
        the item's own error; SerDesError as itself), or BatchCompletionError if a custom
        decision failed the batch."""
        first = next((item for item in self.all if item.status is BatchItemStatus.FAILED), None)
        if first is not None:
            if first.error is None:
                raise ChildContextError(f"batch item {first.index} failed without an error object")
            _raise_item_error(first.error)
        if self.completion_reason is CompletionReason.CUSTOM_COMPLETION_FAILED:
            raise BatchCompletionError(self.completion_reason)

    def get_results(self) -> list[R]:
        """The results of the items that succeeded, in index order."""
        return [cast(R, item.result) for item in self.all if item.status is BatchItemStatus.SUCCEEDED]

    def get_errors(self) -> list[ErrorObject | None]:
        """The errors of the items that failed, in index order."""
        return [item.error for item in self.all if item.status is BatchItemStatus.FAILED]

    @property
    def success_count(self) -> int:
        return len(self.succeeded())

    @property
    def failure_count(self) -> int:
        return len(self.failed())

    @property
    def started_count(self) -> int:
        return len(self.started())

    @property
    def total_count(self) -> int:
        return len(self.all)


def _raise_item_error(error: ErrorObject) -> NoReturn:
    cause = DurableOperationError(error.message, error.type, error.data, error.stack_trace)
    cls: type[DurableOperationError] = SerDesError if error.type == "SerDesError" else ChildContextError
    raise cls(error.message, error.type, error.data, error.stack_trace) from cause


@dataclass(frozen=True)
class Executable(Generic[C]):
    """One item to run: its index (its identity), its function, and its name if it has one."""

    index: int
    func: C
    name: str | None = None


@dataclass(frozen=True)
class CompletionRecord:
    """The completion decision as the batch's summary envelope records it: the reason, how
    many items were started (always the first `started_total`, items start in index order),
    and which of those were still running."""

    completion_reason: CompletionReason
    started_total: int
    started_indexes: frozenset[int]

    @classmethod
    def from_summary_payload(cls, payload: str | None) -> CompletionRecord | None:
        """The record in a stored envelope, or None if there is none (never raises)."""
        try:
            data = json.loads(payload) if payload else None
            if not isinstance(data, dict):
                return None
            total = data.get("totalCount")
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                return None
            reason = CompletionReason(data["completionReason"])
            if isinstance(data.get("startedIndexes"), list):
                started = _indexes(data["startedIndexes"], total)
            elif isinstance(data.get("completedIndexes"), list):
                completed = _indexes(data["completedIndexes"], total)
                started = None if completed is None else frozenset(range(total)) - completed
            else:
                return None
        except (ValueError, TypeError, KeyError):
            return None
        return None if started is None else cls(reason, total, started)

    @staticmethod
    def summary_envelope(result: BatchResult[Any], result_type: str, summary: str | None) -> str:
        """The JSON the batch's operation stores: the record replay needs, the counts, and the
        user's summary (if a summary_generator gave one) under "summary"."""
        started = [item.index for item in result.all if item.status is BatchItemStatus.STARTED]
        completed = [item.index for item in result.all if item.status is not BatchItemStatus.STARTED]
        # Whichever list is shorter, so the record stays small at both ends.
        indexes = {"startedIndexes": started} if len(started) <= len(completed) else {"completedIndexes": completed}
        fields: dict[str, Any] = {
            "type": result_type,
            "totalCount": result.total_count,
            "completionReason": result.completion_reason.value,
            **indexes,
            "startedCount": result.started_count,
            "successCount": result.success_count,
            "failureCount": result.failure_count,
            "status": result.status.value,
        }
        if summary is not None:
            fields["summary"] = summary if isinstance(summary, str) else str(summary)
        return json.dumps(fields)


def _indexes(raw: Sequence[Any], total: int) -> frozenset[int] | None:
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < total for i in raw):
        return None
    return frozenset(raw)


def envelope_summary_generator(result_type: str, custom: SummaryGenerator | None) -> SummaryGenerator:
    """The generator of a batch's stored envelope; `custom` only adds its "summary" field."""

    def generate(result: Any) -> str:
        return CompletionRecord.summary_envelope(result, result_type, custom(result) if custom else None)

    return generate
