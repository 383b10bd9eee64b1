"""JSON log lines from real runs carry the execution, invocation, operation and attempt ids."""

import io
import json
import logging
import uuid

import pytest
from pythonjsonlogger.json import JsonFormatter

from durable import DurableContext, StepContext, durable_execution, logcontext
from durable.client import start_execution
from durable.config import Duration, StepConfig
from durable.models import Execution, Operation
from durable.retries import JitterStrategy, RetryStrategyConfig, create_retry_strategy
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner
from tests import workflows
from tests.processes import wait_until

pytestmark = pytest.mark.django_db

library = logging.getLogger("tests.some_library")  # a library a step calls: it knows nothing of executions
attempts: dict[str, int] = {}


@durable_execution(name="tests.logcontext.flaky")
def flaky(event: dict, context: DurableContext) -> str:
    context.logger.info("handler starts")

    def fetch(step: StepContext) -> str:
        step.logger.info("fetching, attempt %s", step.attempt)
        library.info("library call")
        attempts["fetch"] = attempts.get("fetch", 0) + 1
        if attempts["fetch"] == 1:
            raise ConnectionError("the first attempt fails")
        return "fetched"

    retry = create_retry_strategy(
        RetryStrategyConfig(max_attempts=3, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)
    )
    value = context.step(fetch, name="fetch", config=StepConfig(retry_strategy=retry))
    context.logger.info("handler ends")
    return value


@durable_execution(name="tests.logcontext.stolen")
def stolen(event: dict, context: DurableContext) -> str:
    def steal(step: StepContext) -> str:
        # Another worker takes the lease while this step runs: the invocation's next write is refused.
        Execution.objects.filter(pk=logcontext.current()["execution_id"]).update(lease_token="f" * 32)
        return "stolen"

    return context.step(steal, name="steal")


@pytest.fixture
def json_log():
    """Every record of the process, as the JSON lines a LOG_FORMAT=json handler writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(logcontext.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    attempts.clear()
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_every_line_of_a_run_carries_the_ids_and_the_user_logger_is_silent_on_replay(json_log):
    with DurableTestRunner(flaky) as runner:
        result = runner.run()
    assert json.loads(result.result) == "fetched"
    assert runner.invocations == 2
    lines = json_log()
    mine = [line for line in lines if line["name"] in ("durable.handler", "tests.some_library")]
    # The second invocation replays "handler starts" silently; the step's lines come once per attempt.
    assert [line["message"] for line in mine] == [
        "handler starts",
        "fetching, attempt 1",
        "library call",
        "fetching, attempt 2",
        "library call",
        "handler ends",
    ]
    assert all(line["execution_id"] == result.execution_id for line in mine)
    step_id = result.get_step("fetch").operation_id
    in_steps = [
        line for line in mine if line["message"] in ("fetching, attempt 1", "library call", "fetching, attempt 2")
    ]
    assert [(line["operation_id"], line["operation_name"], line["attempt"]) for line in in_steps] == [
        (step_id, "fetch", 1),
        (step_id, "fetch", 1),
        (step_id, "fetch", 2),
        (step_id, "fetch", 2),
    ]
    # One invocation id per invocation: the first attempt's and the second's differ.
    first, second = mine[1]["invocation_id"], mine[3]["invocation_id"]
    assert len(first) == 32
    assert first != second
    assert mine[0]["invocation_id"] == first
    assert mine[-1]["invocation_id"] == second
    # Outside a step, no step ids.
    assert "operation_id" not in mine[0]
    assert "attempt" not in mine[-1]
    # Nothing outlives the invocation.
    assert logcontext.current() == {}


def test_the_runtimes_own_lines_during_an_invocation_carry_the_ids(json_log):
    execution = start_execution(stolen, None)
    outcome = run_invocation(str(execution.pk))
    assert outcome.ran
    assert outcome.status is None
    lost = [line for line in json_log() if line["name"] == "durable.runtime"]
    assert lost, "the runtime said nothing of the lost lease"
    assert all("lost its lease" in line["message"] for line in lost)
    assert all(line["execution_id"] == str(execution.pk) and len(line["invocation_id"]) == 32 for line in lost)


def test_the_filter_never_overwrites_what_a_record_carries():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.execution_id = "given"
    with logcontext.bound(execution_id="bound", attempt=3, operation_id=None):
        assert logcontext.ContextFilter().filter(record)
    assert record.execution_id == "given"
    assert record.attempt == 3
    assert not hasattr(record, "operation_id")


@pytest.mark.processes
@pytest.mark.timeout(90)
def test_a_real_workers_lines_are_json_with_the_ids(workers):
    (worker,) = workers(1, LOG_FORMAT="json")
    execution = start_execution(workflows.logging_steps, {"tag": f"json-{uuid.uuid4().hex[:8]}"})
    done = wait_until(lambda: Execution.objects.filter(pk=execution.pk).exclude(status="RUNNING").first(), 30)
    assert done.status == "SUCCEEDED", done.error
    worker.stop()
    text = worker.output()
    # Every line on stderr is JSON (the command's one-line banner goes to stdout, merged here).
    banner = [line for line in text.splitlines() if line.startswith("durable worker ")]
    lines = [json.loads(line) for line in text.splitlines() if line.strip() and line not in banner]
    assert len(banner) == 1
    assert len(lines) > 5
    ours = [line for line in lines if line.get("execution_id") == str(execution.pk)]
    by_message = {line["message"]: line for line in ours}
    assert {"handler starts", "fetching, attempt 1", "fetching, attempt 2"} <= set(by_message)
    first, second = by_message["fetching, attempt 1"], by_message["fetching, attempt 2"]
    step_id = Operation.objects.get(execution_id=execution.pk, name="fetch").operation_id
    assert (first["operation_id"], first["attempt"]) == (step_id, 1)
    assert (second["operation_id"], second["attempt"]) == (step_id, 2)
    assert first["invocation_id"] != second["invocation_id"]
    library = [line for line in ours if line["name"] == "tests.some_library"]
    assert [line["attempt"] for line in library] == [1, 2]
    # The handler's line comes once: the second invocation replayed it silently.
    assert [line["message"] for line in ours].count("handler starts") == 1


@pytest.mark.processes
@pytest.mark.timeout(90)
def test_the_lease_keepers_lines_in_a_real_worker_carry_the_ids_of_the_invocation_it_stops(workers):
    (worker,) = workers(1, LOG_FORMAT="json")
    execution = start_execution(workflows.overrun_once, {"tag": f"keeper-{uuid.uuid4().hex[:8]}"})
    done = wait_until(lambda: Execution.objects.filter(pk=execution.pk).exclude(status="RUNNING").first(), 45)
    assert done.status == "SUCCEEDED", done.error
    worker.stop()
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    # The lease keeper, a thread of its own, stopped the overrunning invocation (and its process).
    (keeper,) = [line for line in lines if line["name"] == "durable.lease"]
    assert "ran past its 1s budget" in keeper["message"]
    assert keeper["execution_id"] == str(execution.pk)
    assert len(keeper["invocation_id"]) == 32
    assert "operation_id" not in keeper  # the keeper runs beside the step, not in it
