"""OpenTelemetry spans through the real SDK (its in-memory exporter): an invocation's span, its
steps' spans with their attempts, the link to the request that started the execution, and
nothing at all when no exporter is configured."""

import json
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from durable import DurableContext, StepContext, durable_execution, tracing
from durable.config import Duration, StepConfig
from durable.models import Execution
from durable.retries import JitterStrategy, RetryStrategyConfig, create_retry_strategy
from durable.runtime import run_invocation
from durable.testing import DurableTestRunner
from tests.processes import wait_until
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db

attempts: dict[str, int] = {}


@durable_execution(name="tests.tracing.flaky")
def flaky(event: dict, context: DurableContext) -> str:
    def fetch(step: StepContext) -> str:
        attempts["fetch"] = attempts.get("fetch", 0) + 1
        if attempts["fetch"] < 3:
            raise ConnectionError(f"attempt {step.attempt} fails")
        return "fetched"

    strategy = create_retry_strategy(
        RetryStrategyConfig(max_attempts=3, initial_delay=Duration(1), jitter_strategy=JitterStrategy.NONE)
    )
    context.step(lambda _: 1, name="first")
    return context.step(fetch, name="fetch", config=StepConfig(retry_strategy=strategy))


@durable_execution(name="tests.tracing.doomed")
def doomed(event: dict, context: DurableContext) -> str:
    def fail(step: StepContext) -> str:
        raise ValueError("never works")

    no_retry = create_retry_strategy(RetryStrategyConfig(max_attempts=1))
    return context.step(fail, name="fail", config=StepConfig(retry_strategy=no_retry))


@durable_execution(name="tests.tracing.greet")
def greet(event: dict, context: DurableContext) -> str:
    return context.step(lambda _: "hello", name="greet")


@durable_execution(name="tests.tracing.parent")
def parent(event: dict, context: DurableContext) -> str:
    return context.invoke("tests.tracing.greet", None, name="child")


@pytest.fixture
def spans():
    """The SDK with its in-memory exporter as the engine's tracer provider for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    attempts.clear()
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def by_name(finished, name):
    return [span for span in finished if span.name == name]


def test_an_invocation_has_a_span_and_each_step_attempt_a_child_span(spans):
    with DurableTestRunner(flaky) as runner:
        result = runner.run()
    assert json.loads(result.result) == "fetched"
    finished = spans.get_finished_spans()
    invocations = by_name(finished, "durable invocation")
    assert len(invocations) == runner.invocations == 3  # two retries, each after a suspension
    assert [span.attributes["durable.execution.status"] for span in invocations] == ["RUNNING", "RUNNING", "SUCCEEDED"]
    for span in invocations:
        assert span.attributes["durable.execution.id"] == result.execution_id
        assert span.attributes["durable.function.name"] == "tests.tracing.flaky"
        assert len(span.attributes["durable.invocation.id"]) == 32
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is None  # started outside any request
    assert len({span.attributes["durable.invocation.id"] for span in invocations}) == 3
    # "first" ran once (replayed later without a span); "fetch" once per attempt.
    assert len(by_name(finished, "step first")) == 1
    fetches = by_name(finished, "step fetch")
    assert [span.attributes["durable.step.attempt"] for span in fetches] == [1, 2, 3]
    assert [span.attributes["durable.step.outcome"] for span in fetches] == ["retrying", "retrying", "succeeded"]
    assert [span.status.status_code for span in fetches] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert fetches[0].attributes["error.type"] == "ConnectionError"
    assert fetches[0].status.description == "ConnectionError: attempt 1 fails"
    assert "durable.step.next_attempt_at" in fetches[0].attributes
    step_id = result.get_step("fetch").operation_id
    for attempt, (step, invocation) in enumerate(zip(fetches, invocations, strict=True), start=1):
        # Each attempt ran in its own invocation, as that invocation's child, in its trace.
        assert step.parent.span_id == invocation.context.span_id
        assert step.context.trace_id == invocation.context.trace_id
        assert step.attributes["durable.operation.id"] == step_id
        assert step.attributes["durable.execution.id"] == result.execution_id
        assert step.attributes["durable.step.attempt"] == attempt


def test_a_failed_step_and_execution_are_errors(spans):
    with DurableTestRunner(doomed) as runner:
        result = runner.run()
    assert result.error is not None
    finished = spans.get_finished_spans()
    (step,) = by_name(finished, "step fail")
    assert step.attributes["durable.step.outcome"] == "failed"
    assert step.status.description == "ValueError: never works"
    (invocation,) = by_name(finished, "durable invocation")
    assert invocation.attributes["durable.execution.status"] == "FAILED"
    assert invocation.status.status_code is StatusCode.ERROR


def test_an_execution_started_in_a_request_is_traced_under_that_request(spans, client):
    response = client.post("/start/tests.tracing.greet")
    assert response.status_code == 201
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    (request,) = spans.get_finished_spans()
    assert request.kind is SpanKind.SERVER
    assert request.name == "POST start/<str:function_name>"
    assert request.attributes["http.response.status_code"] == 201
    # The execution keeps the request span's traceparent: version, trace id, span id, flags.
    assert execution.trace_parent == (
        f"00-{request.context.trace_id:032x}-{request.context.span_id:016x}-{request.context.trace_flags:02x}"
    )
    outcome = run_invocation(str(execution.pk))  # later, in a worker
    assert outcome.status == "SUCCEEDED"
    invocation = by_name(spans.get_finished_spans(), "durable invocation")[0]
    assert invocation.context.trace_id == request.context.trace_id
    assert invocation.parent.span_id == request.context.span_id
    (step,) = by_name(spans.get_finished_spans(), "step greet")
    assert step.parent.span_id == invocation.context.span_id


def test_an_invoked_execution_is_traced_under_the_invocation_that_started_it(spans):
    with DurableTestRunner(parent) as runner:
        result = runner.run()
    assert json.loads(result.result) == "hello"
    child = Execution.objects.get(parent_execution_id=result.execution_id)
    invocations = by_name(spans.get_finished_spans(), "durable invocation")
    starter = next(s for s in invocations if s.attributes["durable.execution.id"] == result.execution_id)
    (child_invocation,) = [s for s in invocations if s.attributes["durable.execution.id"] == str(child.pk)]
    assert child.trace_parent.split("-")[2] == f"{starter.context.span_id:016x}"
    assert child_invocation.parent.span_id == starter.context.span_id
    assert child_invocation.context.trace_id == starter.context.trace_id


def test_a_request_continues_its_callers_trace(spans, client):
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = client.post("/start/tests.tracing.greet", headers={"traceparent": caller})
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    (request,) = spans.get_finished_spans()
    assert f"{request.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{request.parent.span_id:016x}" == "b7ad6b7169203331"
    assert execution.trace_parent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


def test_without_an_exporter_nothing_is_traced(client):
    # No provider given, none set globally, no DURABLE_TRACING nor OTEL_EXPORTER_OTLP_ENDPOINT.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing.provider() is None
    exporter = InMemorySpanExporter()
    bystander = TracerProvider()  # a provider nobody gave the engine records nothing
    bystander.add_span_processor(SimpleSpanProcessor(exporter))
    response = client.post("/start/tests.tracing.greet")
    execution = Execution.objects.get(pk=response.json()["execution_id"])
    assert execution.trace_parent is None
    # Inside an invocation, a step's span is the shared no-op: no span object is made.
    seen = []

    @durable_execution(name="tests.tracing.probe")
    def probe(event: dict, context: DurableContext) -> bool:
        def look(step: StepContext) -> bool:
            seen.append(trace.get_current_span())
            return tracing.step_span("e", "o", "n", 1, None) is tracing.step_span("e", "o", "n", 2, None)

        return context.step(look, name="look")

    with DurableTestRunner(probe) as runner:
        result = runner.run()
    assert json.loads(result.result) is True
    assert seen == [trace.INVALID_SPAN]
    assert run_invocation(str(execution.pk)).status == "SUCCEEDED"
    assert exporter.get_finished_spans() == ()


def test_the_settings_switch_tracing_on(settings, monkeypatch):
    # DURABLE_TRACING (or OTEL_EXPORTER_OTLP_ENDPOINT) asks for tracing: read on every check.
    from durable.apps import tracing_enabled

    assert tracing_enabled() is False
    settings.DURABLE = {**settings.DURABLE, "TRACING": True}
    assert tracing_enabled() is True
    settings.DURABLE = {key: value for key, value in settings.DURABLE.items() if key != "TRACING"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_enabled() is True


def exported_spans(receiver):
    """The spans a worker's OTLP/HTTP exporter posted to the receiver, decoded."""
    found = []
    for request in receiver.received:
        assert request.path == "/v1/traces"
        assert {k.lower(): v for k, v in request.headers.items()}["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(request.body)
        for resource in message.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            for scope in resource.scope_spans:
                found.extend((service, span) for span in scope.spans)
    return found


@pytest.mark.processes
@pytest.mark.timeout(90)
@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "forking"])
def test_a_real_worker_exports_its_spans_over_otlp_under_the_request(spans, client, workers, fork):
    with WebhookReceiver() as receiver:
        endpoint = receiver.url.removesuffix("/hooks/documents")
        workers(
            1,
            ["--fork"] if fork else [],
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_SERVICE_NAME="tests-worker",
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        response = client.post(
            "/start/tests.workflows.logging_steps", {"tag": uuid.uuid4().hex}, content_type="application/json"
        )
        execution_id = response.json()["execution_id"]
        (request,) = spans.get_finished_spans()  # the web side's span, in this process
        done = wait_until(lambda: Execution.objects.filter(pk=execution_id).exclude(status="RUNNING").first(), 30)
        assert done.status == "SUCCEEDED", done.error
        names = lambda: [span.name for _, span in exported_spans(receiver)]  # noqa: E731
        wait_until(lambda: names().count("durable invocation") == 2 and names().count("step fetch") == 2, 15)
    exported = exported_spans(receiver)
    assert {service for service, _ in exported} == {"tests-worker"}
    invocations = [span for _, span in exported if span.name == "durable invocation"]
    for invocation in invocations:
        # The worker's invocation spans are children of the request's span, in its trace.
        assert invocation.trace_id.hex() == f"{request.context.trace_id:032x}"
        assert invocation.parent_span_id.hex() == f"{request.context.span_id:016x}"
    fetches = sorted((span for _, span in exported if span.name == "step fetch"), key=lambda s: s.start_time_unix_nano)
    attributes = [{a.key: a.value for a in span.attributes} for span in fetches]
    assert [a["durable.step.attempt"].int_value for a in attributes] == [1, 2]
    assert [a["durable.step.outcome"].string_value for a in attributes] == ["retrying", "succeeded"]
    assert {span.parent_span_id for span in fetches} == {span.span_id for span in invocations}
