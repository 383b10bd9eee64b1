"""The configuration of map and parallel: completion policies, concurrency, names, serdes.

The official SDK keeps these in its config module; `durable.config` re-exports them so they
are found there too. They live apart so the batch machinery can be read (and merged) on its
own. Defaults are the official ones: a map fails fast (its default CompletionConfig has no
criteria, so the first failed item ends it), a parallel requires every branch to succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from durable.exceptions import ValidationError

if TYPE_CHECKING:
    from durable.serdes import SerDes

T = TypeVar("T")

SummaryGenerator = Callable[[Any], str]


class NestingType(Enum):
    """How items are recorded: NESTED (a CONTEXT operation per item, the default) or FLAT (none:
    each item runs in a virtual context, its operations recorded under the batch)."""

    NESTED = "NESTED"
    FLAT = "FLAT"


class BatchItemStatus(Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STARTED = "STARTED"


class CompletionOutcome(Enum):
    """Whether a batch ended early by a custom decision counts as a success or a failure."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CompletionDecision:
    """What a `should_complete` predicate returns: go on, or complete now with an outcome."""

    complete: bool
    outcome: CompletionOutcome | None = None

    def __post_init__(self) -> None:
        if self.complete and self.outcome is None:
            raise ValidationError("a completing decision needs an outcome")
        if not self.complete and self.outcome is not None:
            raise ValidationError("a decision to continue has no outcome")


def continue_batch() -> CompletionDecision:
    """Do not complete the batch yet."""
    return CompletionDecision(complete=False)


def complete_batch(outcome: CompletionOutcome = CompletionOutcome.SUCCEEDED) -> CompletionDecision:
    """Complete the batch now, as a success (default) or a failure."""
    return CompletionDecision(complete=True, outcome=outcome)


@dataclass(frozen=True)
class CompletionItemStatus:
    """One item as a predicate sees it; `status` is None for an item not started yet."""

    index: int
    name: str | None = None
    status: BatchItemStatus | None = None


@dataclass(frozen=True)
class CompletionStatus:
    """The batch's progress as a `should_complete` predicate sees it."""

    success_count: int
    failure_count: int
    completed_count: int
    total_count: int
    items: tuple[CompletionItemStatus, ...] = ()


@dataclass(frozen=True)
class CompletionConfig:
    """When a batch completes: enough successes, too many failures, a custom predicate, or
    every item done. With no criterion at all, the first failure ends the batch.

    Raises ValidationError for values out of range, or a predicate mixed with thresholds.
    """

    min_successful: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: int | float | None = None
    should_complete: Callable[[CompletionStatus], CompletionDecision] | None = None

    def __post_init__(self) -> None:
        if self.min_successful is not None and self.min_successful < 1:
            raise ValidationError(f"min_successful must be at least 1, got {self.min_successful}")
        if self.tolerated_failure_count is not None and self.tolerated_failure_count < 0:
            raise ValidationError(f"tolerated_failure_count cannot be negative, got {self.tolerated_failure_count}")
        percentage = self.tolerated_failure_percentage
        if percentage is not None and not 0 <= percentage <= 100:
            raise ValidationError(f"tolerated_failure_percentage must be within 0 and 100, got {percentage}")
        if self.should_complete is not None and not callable(self.should_complete):
            raise ValidationError("should_complete must be callable")
        thresholds = (self.min_successful, self.tolerated_failure_count, self.tolerated_failure_percentage)
        if self.should_complete is not None and any(t is not None for t in thresholds):
            raise ValidationError(
                "should_complete cannot be combined with min_successful, tolerated_failure_count "
                "or tolerated_failure_percentage"
            )

    def _validate_for_total(self, total: int) -> None:
        """Refuse a minimum no batch of `total` items can reach. Raises ValidationError."""
        if self.min_successful is not None and self.min_successful > total:
            raise ValidationError(
                f"min_successful cannot be greater than the number of items: {self.min_successful} > {total}"
            )

    @staticmethod
    def first_successful() -> CompletionConfig:
        return CompletionConfig(min_successful=1)

    @staticmethod
    def all_completed() -> CompletionConfig:
        # Every item runs whatever fails: all-None would mean fail-fast instead.
        return CompletionConfig(tolerated_failure_percentage=100)

    @staticmethod
    def all_successful() -> CompletionConfig:
        return CompletionConfig(tolerated_failure_count=0, tolerated_failure_percentage=0)


def _check_concurrency(max_concurrency: int | None) -> None:
    if max_concurrency is not None and max_concurrency < 1:
        raise ValidationError(f"max_concurrency must be at least 1, got {max_concurrency}")


@dataclass(frozen=True)
class ParallelConfig:
    """How `context.parallel` runs its branches. `serdes` stores the batch (and the branches,
    unless `item_serdes` is given); `summary_generator` adds a `summary` to the stored record."""

    max_concurrency: int | None = None
    completion_config: CompletionConfig = field(default_factory=CompletionConfig.all_successful)
    serdes: SerDes[Any] | None = None
    item_serdes: SerDes[Any] | None = None
    summary_generator: SummaryGenerator | None = None
    nesting_type: NestingType = NestingType.NESTED

    def __post_init__(self) -> None:
        _check_concurrency(self.max_concurrency)


@dataclass(frozen=True)
class ParallelBranch(Generic[T]):
    """A branch of `context.parallel` with a name of its own (default "parallel-branch-<i>")."""

    func: Callable[..., T]
    name: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        return self.func(*args, **kwargs)


@dataclass(frozen=True)
class MapConfig(Generic[T]):
    """How `context.map` runs its items. `item_namer(item, index)` names each item's context
    (default "map-item-<i>"); it is called for every item on every replay, so it must be
    deterministic."""

    max_concurrency: int | None = None
    completion_config: CompletionConfig = field(default_factory=CompletionConfig)
    serdes: SerDes[Any] | None = None
    item_serdes: SerDes[Any] | None = None
    summary_generator: SummaryGenerator | None = None
    nesting_type: NestingType = NestingType.NESTED
    item_namer: Callable[[T, int], str] | None = None

    def __post_init__(self) -> None:
        _check_concurrency(self.max_concurrency)
