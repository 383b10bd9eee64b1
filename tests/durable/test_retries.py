"""Retry strategies against the official SDK's, used as an oracle."""

import re

import aws_durable_execution_sdk_python.config as official_config
import aws_durable_execution_sdk_python.retries as official
import pytest

from durable.config import Duration, JitterStrategy
from durable.retries import (
    LinearRetryStrategyConfig,
    RetryDecision,
    RetryPresets,
    RetryStrategyConfig,
    create_linear_retry_strategy,
    create_retry_strategy,
)

DETERMINISTIC_PRESETS = ["critical", "linear", "fixed", "none"]


@pytest.mark.parametrize("preset", DETERMINISTIC_PRESETS)
def test_presets_without_jitter_match_the_official_sdk(preset):
    ours = getattr(RetryPresets, preset)()
    theirs = getattr(official.RetryPresets, preset)()
    error = RuntimeError("x")
    for attempt in range(1, 12):
        mine, other = ours(error, attempt), theirs(error, attempt)
        assert (mine.should_retry, mine.delay_seconds) == (other.should_retry, other.delay_seconds), attempt


@pytest.mark.parametrize("preset", ["default", "transient", "resource_availability"])
def test_jittered_presets_stop_at_the_same_attempt_and_stay_in_bounds(preset):
    ours = getattr(RetryPresets, preset)()
    theirs = getattr(official.RetryPresets, preset)()
    for attempt in range(1, 12):
        for _ in range(30):
            mine, other = ours(ValueError(), attempt), theirs(ValueError(), attempt)
            assert mine.should_retry == other.should_retry
            if mine.should_retry:
                assert 1 <= mine.delay_seconds <= 300


def test_defaults_are_the_official_ones():
    ours, theirs = RetryStrategyConfig(), official.RetryStrategyConfig()
    assert (ours.max_attempts, ours.initial_delay_seconds, ours.max_delay_seconds, ours.backoff_rate) == (
        theirs.max_attempts,
        theirs.initial_delay_seconds,
        theirs.max_delay_seconds,
        theirs.backoff_rate,
    )
    assert ours.jitter_strategy.value == theirs.jitter_strategy.value
    lin, their_lin = LinearRetryStrategyConfig(), official.LinearRetryStrategyConfig()
    assert (lin.max_attempts, lin.initial_delay_seconds, lin.increment_seconds) == (
        their_lin.max_attempts,
        their_lin.initial_delay_seconds,
        their_lin.increment_seconds,
    )


def test_exponential_backoff_is_capped():
    strategy = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=10, initial_delay=Duration(2), max_delay=Duration(20), jitter_strategy=JitterStrategy.NONE
        )
    )
    assert [strategy(RuntimeError(), n).delay_seconds for n in range(1, 7)] == [2, 4, 8, 16, 20, 20]
    assert strategy(RuntimeError(), 10) == RetryDecision.no_retry()


def test_full_jitter_spreads_delays_and_never_goes_below_one_second():
    strategy = create_retry_strategy(RetryStrategyConfig(max_attempts=5, initial_delay=Duration(100)))
    delays = {strategy(RuntimeError(), 1).delay_seconds for _ in range(200)}
    assert min(delays) >= 1
    assert max(delays) <= 100
    assert len(delays) > 20  # jitter really varies the delay


def test_half_jitter_keeps_at_least_half_the_delay():
    strategy = create_retry_strategy(
        RetryStrategyConfig(max_attempts=5, initial_delay=Duration(100), jitter_strategy=JitterStrategy.HALF)
    )
    delays = [strategy(RuntimeError(), 1).delay_seconds for _ in range(200)]
    assert min(delays) >= 50
    assert max(delays) <= 100


def test_only_matching_errors_are_retried():
    strategy = create_retry_strategy(
        RetryStrategyConfig(
            retryable_errors=["throttl", re.compile(r"HTTP 5\d\d")], retryable_error_types=[TimeoutError]
        )
    )
    assert strategy(RuntimeError("throttled by upstream"), 1).should_retry
    assert strategy(RuntimeError("HTTP 503"), 1).should_retry
    assert strategy(TimeoutError(), 1).should_retry
    assert not strategy(RuntimeError("HTTP 404"), 1).should_retry
    assert not strategy(PermissionError("denied"), 1).should_retry


def test_linear_strategy_grows_by_its_increment():
    strategy = create_linear_retry_strategy(
        LinearRetryStrategyConfig(
            max_attempts=5, initial_delay=Duration(3), increment=Duration(2), jitter_strategy=JitterStrategy.NONE
        )
    )
    assert [strategy(RuntimeError(), n).delay_seconds for n in range(1, 5)] == [3, 5, 7, 9]
    assert not strategy(RuntimeError(), 5).should_retry


def test_duration_constructors_match_the_official_ones():
    for factory in ("from_seconds", "from_minutes", "from_hours", "from_days"):
        assert getattr(Duration, factory)(1.5).seconds == getattr(official_config.Duration, factory)(1.5).seconds
