"""Retry strategies: a function of (error, attempts made) returning a RetryDecision.

`RetryDecision` lives in `durable.config` (beside the `StepConfig` that takes a strategy) so
the two modules do not import each other; it is exported here too, where the official SDK has it.
"""

from __future__ import annotations

import math
import random
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from durable.config import ChildConfig, Duration, JitterStrategy, RetryDecision, RetryStrategy

# The context is a layer above: with_retry takes anything that offers its methods (a protocol).
from durable.types import DurableContext

T = TypeVar("T")

__all__ = [
    "LinearRetryStrategyConfig",
    "RetryDecision",
    "RetryPresets",
    "RetryStrategy",
    "RetryStrategyConfig",
    "WithRetryConfig",
    "create_linear_retry_strategy",
    "create_retry_strategy",
    "with_retry",
]

Numeric = int | float

# Jitter draws from this generator; the test runner may seed it for repeatable delays.
jitter_random = random.Random()


@dataclass
class RetryStrategyConfig:
    """Exponential backoff: initial_delay * backoff_rate ** (attempt - 1), capped, then jittered."""

    max_attempts: int = 3
    initial_delay: Duration = field(default_factory=lambda: Duration(5))
    max_delay: Duration = field(default_factory=lambda: Duration(300))
    backoff_rate: Numeric = 2.0
    jitter_strategy: JitterStrategy = JitterStrategy.FULL
    retryable_errors: list[str | re.Pattern[str]] | None = None
    retryable_error_types: list[type[Exception]] | None = None

    @property
    def initial_delay_seconds(self) -> int:
        return self.initial_delay.to_seconds()

    @property
    def max_delay_seconds(self) -> int:
        return self.max_delay.to_seconds()


@dataclass
class LinearRetryStrategyConfig:
    """Linear backoff: initial_delay + increment * (attempt - 1), capped, then jittered."""

    max_attempts: int = 6
    initial_delay: Duration = field(default_factory=lambda: Duration(1))
    increment: Duration = field(default_factory=lambda: Duration(1))
    max_delay: Duration = field(default_factory=lambda: Duration(300))
    jitter_strategy: JitterStrategy = JitterStrategy.FULL
    retryable_errors: list[str | re.Pattern[str]] | None = None
    retryable_error_types: list[type[Exception]] | None = None

    @property
    def initial_delay_seconds(self) -> int:
        return self.initial_delay.to_seconds()

    @property
    def increment_seconds(self) -> int:
        return self.increment.to_seconds()

    @property
    def max_delay_seconds(self) -> int:
        return self.max_delay.to_seconds()


def _matcher(
    patterns: list[str | re.Pattern[str]] | None, types: list[type[Exception]] | None
) -> Callable[[Exception], bool]:
    if patterns is None and types is None:
        return lambda _error: True
    pats = list(patterns or [])
    kinds = tuple(types or [])

    def matches(error: Exception) -> bool:
        if kinds and isinstance(error, kinds):
            return True
        text = str(error)
        return any(p.search(text) if isinstance(p, re.Pattern) else p in text for p in pats)

    return matches


def _finish(delay: float, jitter: JitterStrategy) -> Duration:
    # Whole seconds, at least one: the journal schedules retries by the second, as Lambda does.
    return Duration(max(1, math.ceil(jitter.apply(delay, jitter_random.random))))


def create_retry_strategy(config: RetryStrategyConfig | None = None) -> RetryStrategy:
    """Build an exponential-backoff strategy from `config` (defaults if None)."""
    cfg = config or RetryStrategyConfig()
    retryable = _matcher(cfg.retryable_errors, cfg.retryable_error_types)

    def strategy(error: Exception, attempts_made: int) -> RetryDecision:
        if attempts_made >= cfg.max_attempts or not retryable(error):
            return RetryDecision.no_retry()
        base = cfg.initial_delay_seconds * cfg.backoff_rate ** (attempts_made - 1)
        return RetryDecision.retry(_finish(min(base, cfg.max_delay_seconds), cfg.jitter_strategy))

    _MAX_ATTEMPTS[strategy] = cfg.max_attempts
    return strategy


def create_linear_retry_strategy(config: LinearRetryStrategyConfig | None = None) -> RetryStrategy:
    """Build a linear-backoff strategy from `config` (defaults if None)."""
    cfg = config or LinearRetryStrategyConfig()
    retryable = _matcher(cfg.retryable_errors, cfg.retryable_error_types)

    def strategy(error: Exception, attempts_made: int) -> RetryDecision:
        if attempts_made >= cfg.max_attempts or not retryable(error):
            return RetryDecision.no_retry()
        base = cfg.initial_delay_seconds + cfg.increment_seconds * (attempts_made - 1)
        return RetryDecision.retry(_finish(min(base, cfg.max_delay_seconds), cfg.jitter_strategy))

    _MAX_ATTEMPTS[strategy] = cfg.max_attempts
    return strategy


# The attempts in all of the strategies built here, for operators ("retry 2 of 6"); a strategy of
# the user's own is a plain function that does not say.
_MAX_ATTEMPTS: weakref.WeakKeyDictionary[Callable[..., Any], int] = weakref.WeakKeyDictionary()


def max_attempts(strategy: RetryStrategy) -> int | None:
    """The attempts in all a strategy built by this module allows; None for another strategy."""
    try:
        return _MAX_ATTEMPTS.get(strategy)
    except TypeError:  # not weakly referenceable: not one of ours
        return None


class RetryPresets:
    """Named strategies with the official SDK's parameters."""

    @classmethod
    def none(cls) -> RetryStrategy:
        return create_retry_strategy(RetryStrategyConfig(max_attempts=1))

    @classmethod
    def default(cls) -> RetryStrategy:
        """Used when a step gives no strategy: 6 attempts, 5 s doubling to 60 s, full jitter."""
        return create_retry_strategy(
            RetryStrategyConfig(max_attempts=6, initial_delay=Duration(5), max_delay=Duration(60))
        )

    @classmethod
    def transient(cls) -> RetryStrategy:
        return create_retry_strategy(RetryStrategyConfig(max_attempts=3, jitter_strategy=JitterStrategy.HALF))

    @classmethod
    def resource_availability(cls) -> RetryStrategy:
        return create_retry_strategy(
            RetryStrategyConfig(max_attempts=5, initial_delay=Duration(5), max_delay=Duration(300))
        )

    @classmethod
    def critical(cls) -> RetryStrategy:
        return create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=10,
                initial_delay=Duration(1),
                max_delay=Duration(60),
                backoff_rate=1.5,
                jitter_strategy=JitterStrategy.NONE,
            )
        )

    @classmethod
    def linear(cls) -> RetryStrategy:
        return create_linear_retry_strategy(LinearRetryStrategyConfig(jitter_strategy=JitterStrategy.NONE))

    @classmethod
    def fixed(cls, interval: Duration | None = None) -> RetryStrategy:
        delay = interval or Duration(5)
        return create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=5,
                initial_delay=delay,
                max_delay=delay,
                backoff_rate=1,
                jitter_strategy=JitterStrategy.NONE,
            )
        )


@dataclass(frozen=True)
class WithRetryConfig(Generic[T]):
    """How `with_retry` retries: the strategy (default: `create_retry_strategy()`), and whether the
    attempts run in a child context of their own (default), with that context's config."""

    retry_strategy: Callable[[Exception, int], RetryDecision] | None = None
    wrap_with_run_in_child_context: bool = True
    child_context_config: ChildConfig[T] | None = None


def with_retry(
    context: DurableContext,
    func: Callable[[DurableContext, int], T],
    config: WithRetryConfig[T],
    name: str | None = None,
) -> T:
    """Run `func(context, attempt)` (attempt 1, 2, ...), a block of durable operations, again from
    its start after a failure, waiting (a durable wait, "<name>-backoff-<attempt>") as the strategy
    says. Unlike a step's retries, the whole block runs again.

    Raises the last attempt's error when the strategy gives up: as a ChildContextError (the error
    on its `__cause__`) when wrapped in a child context, unchanged otherwise.
    """
    strategy = config.retry_strategy or create_retry_strategy()

    def attempts(ctx: DurableContext) -> T:
        attempt = 0
        while True:  # bounded: the strategy ends it (every strategy here caps its attempts)
            attempt += 1
            try:
                return func(ctx, attempt)
            except Exception as error:  # suspension is a BaseException: it passes through
                decision = strategy(error, attempt)
                if not decision.should_retry:
                    raise
                ctx.wait(decision.delay, name=f"{name}-backoff-{attempt}" if name else None)

    if not config.wrap_with_run_in_child_context:
        return attempts(context)
    result: T = context.run_in_child_context(attempts, name=name, config=config.child_context_config)
    return result
