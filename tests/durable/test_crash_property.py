"""Property: random programs crashed at random points end with the result of a crash-free run.

A program is a list of instructions (steps, failing steps, at-most-once steps, waits,
callbacks, transactional steps, and hostile values: results with lone surrogates, errors with
NUL characters, names over the limit, results over the size limit). A crash is a `Crash` (a
SystemExit, what the engine lets end a process) raised at the n-th crash point: a step body
starting, a step body having done its side effect, or a checkpoint write about to happen (after
a body ran and before its result is on disk). The driver restarts after each crash once the
lease has expired, completes callbacks when the execution waits on them, and compares the final
result with the same program run without crashes.

Examples: DURABLE_PROPERTY_EXAMPLES (default 100; raise it by hand for a soak).
"""

import json
import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable import (
    DurableContext,
    RetryPresets,
    StepConfig,
    StepContext,
    StepError,
    StepSemantics,
    ValidationError,
    durable_execution,
)
from durable.client import get_execution, send_callback_success
from durable.config import Duration, JitterStrategy, WaitForCallbackConfig
from durable.models import Operation
from durable.retries import RetryStrategyConfig, create_retry_strategy
from durable.store import sql as journal_sql
from durable.testing import DurableTestRunner
from tests.durable.helpers import Crash

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("DURABLE_PROPERTY_EXAMPLES", "100"))
NO_RETRY = RetryPresets.none()
RETRY = create_retry_strategy(
    RetryStrategyConfig(max_attempts=4, initial_delay=Duration(2), jitter_strategy=JitterStrategy.NONE)
)


class Chaos:
    """Crash points, side-effect ledger; reset for every run."""

    def __init__(self, crash_at: frozenset[int] = frozenset()) -> None:
        self.crash_at = crash_at
        self.points = 0
        self.body_runs: dict[tuple[int, int], int] = {}

    def point(self) -> None:
        self.points += 1
        if self.points in self.crash_at:
            raise Crash


chaos = Chaos()

instruction = st.one_of(
    st.tuples(st.just("step"), st.integers(0, 9)),
    st.tuples(st.just("flaky"), st.integers(1, 3)),
    st.tuples(st.just("at_most_once"), st.integers(0, 9)),
    st.tuples(st.just("transactional"), st.integers(0, 9)),
    st.tuples(st.just("wait"), st.integers(1, 3600)),
    st.tuples(st.just("callback"), st.integers(0, 9)),
    st.tuples(st.just("surrogate"), st.integers(0, 9)),
    st.tuples(st.just("nul_error"), st.integers(0, 9)),
    st.tuples(st.just("long_name"), st.integers(0, 9)),
    st.tuples(st.just("huge"), st.integers(0, 9)),
)
SCANNED = os.fsdecode(b"scan-\xff")  # a lone surrogate, as a file name that is not UTF-8 gives
RESULT_LIMIT = 4096


@durable_execution(name="tests.property.program")
def program(event: dict, context: DurableContext) -> list:
    results = []
    for i, (kind, arg) in enumerate(event["program"]):
        if kind == "wait":
            context.wait(Duration(arg), name=f"w{i}")
            results.append(None)
        elif kind == "callback":
            value = context.wait_for_callback(lambda cid, _: None, name=f"cb{i}", config=WaitForCallbackConfig())
            results.append(value)
        elif kind == "long_name":
            try:
                context.step(body(i, kind, arg), name=f"{i}" * 300)
            except ValidationError:
                results.append("name refused")
        elif kind in ("nul_error", "huge"):
            try:
                context.step(body(i, kind, arg), name=f"{kind}{i}", config=StepConfig(retry_strategy=NO_RETRY))
            except StepError as exc:
                results.append([exc.error_type, exc.message])
        else:
            results.append(context.step(body(i, kind, arg), name=f"{kind}{i}", config=step_config(kind)))
    return results


def step_config(kind: str) -> StepConfig:
    if kind == "at_most_once":
        return StepConfig(retry_strategy=RETRY, step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)
    return StepConfig(retry_strategy=RETRY, transactional=kind == "transactional")


def body(i: int, kind: str, arg: int):
    def run(step: StepContext):
        chaos.point()  # crash before the body does anything
        key = (i, step.attempt)
        chaos.body_runs[key] = chaos.body_runs.get(key, 0) + 1
        chaos.point()  # crash after the side effect, before the result is returned
        if kind == "flaky" and step.attempt <= arg:
            raise ConnectionError(f"attempt {step.attempt} of {i} fails")
        if kind == "surrogate":
            return {"file": f"{SCANNED}{arg}", "names": [SCANNED, str(arg)]}
        if kind == "nul_error":
            raise ValueError(f"bad\x00{arg}")
        if kind == "huge":
            return "x" * (RESULT_LIMIT + arg)
        return {"i": i, "value": arg * 7, **({"attempt": step.attempt} if kind == "flaky" else {})}

    return run


def drive(runner: DurableTestRunner, execution_id: str) -> None:
    for _ in range(500):
        try:
            still_running = runner.step_once(execution_id)
        except Crash:
            runner.clock.advance_to(runner.clock.current + timedelta(seconds=61))
            continue
        if not still_running:
            return
        pending = Operation.objects.filter(execution_id=execution_id, type="CALLBACK", status="STARTED")
        for op in pending:
            index = op.name.split(" ")[0].removeprefix("cb")
            send_callback_success(op.callback_id, f"cb-{index}")
        if not pending:
            runner.clock.advance_to(get_execution(execution_id).wake_at)
    raise AssertionError("the execution did not end within 500 invocations")


def run_program(steps: list, crash_at: frozenset[int], monkeypatch) -> tuple[str, dict, Chaos]:
    global chaos
    chaos = Chaos(crash_at)
    real_save = journal_sql.checkpoint_rows  # what every journal write builds its statements from

    def save(execution_id, checkpoints):
        chaos.point()  # crash with a body's result computed but not yet on disk
        return real_save(execution_id, checkpoints)

    monkeypatch.setattr(journal_sql, "checkpoint_rows", save)
    with DurableTestRunner(program) as runner:
        execution_id = runner.run_async(json.dumps({"program": steps}))
        drive(runner, execution_id)
    execution = get_execution(execution_id)
    monkeypatch.setattr(journal_sql, "checkpoint_rows", real_save)
    return execution.status, json.loads(execution.result) if execution.result else execution.error, chaos


@pytest.fixture(autouse=True)
def _small_results(settings):
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "MAX_RESULT_BYTES": RESULT_LIMIT}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(instruction, min_size=1, max_size=8),
    crash_at=st.frozensets(st.integers(1, 40), max_size=3),
)
def test_crashes_never_change_the_result(steps, crash_at, monkeypatch):
    baseline_status, baseline, _ = run_program(steps, frozenset(), monkeypatch)
    status, result, crashed = run_program(steps, crash_at, monkeypatch)
    assert baseline_status == "SUCCEEDED"
    assert (status, result) == (baseline_status, baseline)
    for (i, attempt), runs in crashed.body_runs.items():
        if steps[i][0] == "at_most_once":
            assert runs <= 1, f"at-most-once step {i} ran {runs} times in attempt {attempt}"


def test_the_crash_points_are_reached(monkeypatch):
    # Guard against a property that passes because no crash ever fires.
    steps = [
        ("step", 1),
        ("at_most_once", 2),
        ("wait", 5),
        ("callback", 0),
        ("transactional", 3),
        ("surrogate", 4),
        ("nul_error", 5),
        ("long_name", 6),
        ("huge", 7),
    ]
    _, _, plain = run_program(steps, frozenset(), monkeypatch)
    assert plain.points >= 10
    status, result, crashed = run_program(steps, frozenset({2, 5, 9, 14}), monkeypatch)
    assert status == "SUCCEEDED"
    assert crashed.points > plain.points
    assert result[3] == "cb-3"
    # The hostile values went through as the engine promises, crashes or not.
    assert result[5] == {"file": f"{SCANNED}4", "names": [SCANNED, "4"]}
    assert result[6] == ["ValueError", "bad\\x005"]
    assert result[7] == "name refused"
    assert result[8][0] == "SerDesError"
    assert f"the limit is {RESULT_LIMIT} bytes" in result[8][1]
