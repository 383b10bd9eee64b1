"""Wait strategies for `wait_for_condition`: when to poll again, and when to give up.

The official SDK's names and meanings (`waits` module): a strategy is called after each poll
with the state the check returned and the number of polls made so far; it answers "stop
polling" (the condition holds: that state is the result) or "poll again after this delay",
and raises WaitForConditionError once the attempts are spent. The delay is whole seconds,
at least 1, since each poll is a durable wait: the execution suspends between polls.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from durable.config import Duration, JitterStrategy
from durable.exceptions import WaitForConditionError

if TYPE_CHECKING:
    from durable.serdes import SerDes

T = TypeVar("T")

Numeric = int | float

# Jitter only spreads polls out; it never decides what a replay sees (the delay is recorded).
_jitter_random = random.Random()


@dataclass
class WaitStrategyConfig(Generic[T]):
    """Exponential backoff between polls: initial_delay * backoff_rate ** (attempt - 1), capped
    at max_delay, then jittered; at most max_attempts polls."""

    should_continue_polling: Callable[[T], bool]
    max_attempts: int = 60
    initial_delay: Duration = field(default_factory=lambda: Duration.from_seconds(5))
    max_delay: Duration = field(default_factory=lambda: Duration.from_minutes(5))
    backoff_rate: Numeric = 1.5
    jitter_strategy: JitterStrategy = field(default=JitterStrategy.FULL)

    @property
    def initial_delay_seconds(self) -> int:
        return self.initial_delay.to_seconds()

    @property
    def max_delay_seconds(self) -> int:
        return self.max_delay.to_seconds()


@dataclass(frozen=True)
class WaitForConditionDecision:
    """Poll again after `delay`, or stop polling (the condition holds)."""

    should_continue: bool
    delay: Duration

    @property
    def delay_seconds(self) -> int:
        return self.delay.to_seconds()

    @classmethod
    def continue_waiting(cls, delay: Duration) -> WaitForConditionDecision:
        return cls(should_continue=True, delay=delay)

    @classmethod
    def stop_polling(cls) -> WaitForConditionDecision:
        return cls(should_continue=False, delay=Duration())


WaitStrategy = Callable[[T, int], WaitForConditionDecision]


def create_wait_strategy(config: WaitStrategyConfig[T]) -> Callable[[T, int], WaitForConditionDecision]:
    """A strategy from `config`. Raises WaitForConditionError when polls run out while the
    condition still does not hold (a condition met on the last attempt still succeeds)."""

    def wait_strategy(result: T, attempts_made: int) -> WaitForConditionDecision:
        if not config.should_continue_polling(result):
            return WaitForConditionDecision.stop_polling()
        if attempts_made >= config.max_attempts:
            raise WaitForConditionError(
                f"wait_for_condition exhausted {config.max_attempts} attempts before the condition was met"
            )
        base = min(
            config.initial_delay_seconds * (config.backoff_rate ** (attempts_made - 1)), config.max_delay_seconds
        )
        delay = config.jitter_strategy.apply(base, _jitter_random.random)
        return WaitForConditionDecision.continue_waiting(Duration(max(1, math.ceil(delay))))

    return wait_strategy


@dataclass(frozen=True)
class WaitForConditionConfig(Generic[T]):
    """How `wait_for_condition` polls: `wait_strategy(state, attempts_made)` after each check,
    starting from `initial_state`; `serdes` stores the state between polls (default: the
    extended-type serdes). The initial state goes through the serdes before the first check,
    so the check sees the same shape on every poll."""

    wait_strategy: Callable[[T, int], WaitForConditionDecision]
    initial_state: T
    serdes: SerDes[T] | None = None
