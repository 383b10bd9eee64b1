import logging

import pytest

from durable import DurableContext, StepContext, durable_execution
from durable.config import Duration
from durable.testing import DurableTestRunner

pytestmark = pytest.mark.django_db


@durable_execution(name="tests.logger.replay")
def chatty(event: dict, context: DurableContext) -> str:
    context.logger.info("starting")

    def work(step: StepContext) -> str:
        step.logger.info("working on attempt %s", step.attempt)
        return "done"

    context.step(work, name="work")
    context.logger.info("before the wait")
    context.wait(Duration(10), name="pause")
    context.logger.info("after the wait")
    return "ok"


def test_the_logger_is_silent_while_replaying_and_tags_records(caplog):
    caplog.set_level(logging.INFO, logger="durable.handler")
    with DurableTestRunner(chatty) as runner:
        result = runner.run()
    assert runner.invocations == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "durable.handler"]
    # The second invocation replayed "starting", the step and "before the wait" silently.
    assert messages == ["starting", "working on attempt 1", "before the wait", "after the wait"]
    step_record = next(r for r in caplog.records if r.getMessage().startswith("working"))
    assert step_record.execution_id == result.execution_id
    assert step_record.operation_id == result.get_step("work").operation_id
    assert step_record.attempt == 1
    assert all(r.execution_id == result.execution_id for r in caplog.records if r.name == "durable.handler")
