"""Configuration objects for durable operations (the official SDK's names and defaults)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

# Map and parallel configuration lives in durable.batch_config; found here too, as in the official SDK.
from durable.batch_config import (  # noqa: F401 - re-exported
    BatchItemStatus,
    CompletionConfig,
    CompletionDecision,
    CompletionItemStatus,
    CompletionOutcome,
    CompletionStatus,
    MapConfig,
    NestingType,
    ParallelBranch,
    ParallelConfig,
    complete_batch,
    continue_batch,
)

if TYPE_CHECKING:
    from durable.serdes import SerDes

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

MAX_DURATION_SECONDS = 366 * 24 * 3600

# A number of seconds, a count or a ratio where either kind is accepted (the official alias).
Numeric = int | float


@dataclass(frozen=True)
class Duration:
    """A span of whole seconds; waits and retry delays use seconds as Lambda does."""

    seconds: int = 0

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Duration cannot be negative, got {self.seconds} seconds")

    def to_seconds(self) -> int:
        return self.seconds

    @classmethod
    def from_seconds(cls, value: float) -> Duration:
        return cls(int(value))

    @classmethod
    def from_minutes(cls, value: float) -> Duration:
        return cls(int(value * 60))

    @classmethod
    def from_hours(cls, value: float) -> Duration:
        return cls(int(value * 3600))

    @classmethod
    def from_days(cls, value: float) -> Duration:
        return cls(int(value * 86400))


class StepSemantics(enum.Enum):
    AT_MOST_ONCE_PER_RETRY = "AT_MOST_ONCE_PER_RETRY"
    AT_LEAST_ONCE_PER_RETRY = "AT_LEAST_ONCE_PER_RETRY"


class JitterStrategy(enum.StrEnum):
    NONE = "NONE"
    FULL = "FULL"
    HALF = "HALF"

    def apply(self, delay: float, rand: Callable[[], float]) -> float:
        """Return the delay after jitter; `rand` yields a float in [0, 1)."""
        if self is JitterStrategy.FULL:
            return delay * rand()
        if self is JitterStrategy.HALF:
            return delay / 2 + (delay / 2) * rand()
        return delay


@dataclass(frozen=True)
class RetryDecision:
    should_retry: bool
    delay: Duration

    @property
    def delay_seconds(self) -> int:
        return self.delay.to_seconds()

    @classmethod
    def retry(cls, delay: Duration) -> RetryDecision:
        return cls(True, delay)

    @classmethod
    def no_retry(cls) -> RetryDecision:
        return cls(False, Duration())


RetryStrategy = Callable[[Exception, int], RetryDecision]


@dataclass
class StepConfig:
    """How a step retries, when its body may run, and how its result is stored.

    `transactional` (ours, not the official SDK's) commits the body's Django database writes
    in the same transaction as the step's SUCCEEDED checkpoint. `timeout` (ours too) limits
    each attempt: one that runs over fails with StepTimeoutError and the retry strategy decides.
    """

    retry_strategy: RetryStrategy | None = None
    step_semantics: StepSemantics = StepSemantics.AT_LEAST_ONCE_PER_RETRY
    serdes: SerDes[Any] | None = None
    sub_type: str | None = field(default=None, kw_only=True)
    transactional: bool = field(default=False, kw_only=True)
    timeout: Duration | None = field(default=None, kw_only=True)


@dataclass
class CallbackConfig:
    """Timeout and heartbeat timeout of a callback; zero means none."""

    timeout: Duration = field(default_factory=Duration)
    heartbeat_timeout: Duration = field(default_factory=Duration)
    serdes: SerDes[Any] | None = None
    sub_type: str | None = field(default=None, kw_only=True)

    @property
    def timeout_seconds(self) -> int:
        return self.timeout.to_seconds()

    @property
    def heartbeat_timeout_seconds(self) -> int:
        return self.heartbeat_timeout.to_seconds()


@dataclass
class WaitForCallbackConfig(CallbackConfig):
    """A callback config whose submitter step retries per `retry_strategy`."""

    retry_strategy: RetryStrategy | None = None


@dataclass
class ChildConfig(Generic[T]):
    """How a child context's result is stored; `is_virtual` records nothing of the context
    itself (see `durable.operation.flat`)."""

    serdes: SerDes[Any] | None = None
    sub_type: str | None = None
    summary_generator: Callable[[T], str] | None = None
    is_virtual: bool = False


@dataclass(frozen=True)
class InvokeConfig(Generic[P, R]):
    """How `context.invoke` sends its payload and reads the result (JSON by default).

    `tenant_id` is kept for the official signature (no tenants here). `timeout` (ours) bounds
    the invoked execution (1 s to 366 days; default: the invoked function's own execution
    timeout); past it, the invoke fails with the official ChainedInvoke.Timeout error.
    """

    serdes_payload: SerDes[P] | None = None
    serdes_result: SerDes[R] | None = None
    tenant_id: str | None = None
    timeout: Duration | None = field(default=None, kw_only=True)
