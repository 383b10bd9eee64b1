"""A document submitted through the API is traced from the HTTP request to its workflow's steps
(the project's middleware, the real OpenTelemetry SDK with its in-memory exporter)."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from approvals.models import Document
from durable import tracing
from durable.models import Execution
from durable.runtime import run_invocation

pytestmark = pytest.mark.django_db

BODY = {"title": "Library budget", "text": "The council approved a new budget. It adds evening hours."}


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def test_a_submitted_documents_workflow_is_traced_under_its_request(api, spans):
    response = api.post("/api/documents", BODY)
    assert response.status_code == 202
    (request,) = spans.get_finished_spans()
    assert request.kind is SpanKind.SERVER
    assert request.attributes["http.request.method"] == "POST"
    assert request.attributes["http.response.status_code"] == 202
    document = Document.objects.get(public_id=response.json()["id"])
    execution = Execution.objects.get(pk=document.execution_id)
    assert execution.trace_parent.split("-")[1:3] == [
        f"{request.context.trace_id:032x}",
        f"{request.context.span_id:016x}",
    ]
    run_invocation(str(execution.pk))  # the worker's first invocation: summarize, then wait for a review
    finished = spans.get_finished_spans()
    (invocation,) = [span for span in finished if span.name == "durable invocation"]
    assert invocation.parent.span_id == request.context.span_id
    assert invocation.attributes["durable.execution.status"] == "RUNNING"
    steps = [span for span in finished if span.name.startswith("step ")]
    assert steps, "the workflow's steps made no spans"
    assert all(step.parent.span_id == invocation.context.span_id for step in steps)
    assert all(step.context.trace_id == request.context.trace_id for step in steps)
    assert "step summarize #1" in {step.name for step in steps}


def test_without_tracing_the_request_and_execution_carry_nothing(api):
    response = api.post("/api/documents", BODY)
    document = Document.objects.get(public_id=response.json()["id"])
    assert Execution.objects.get(pk=document.execution_id).trace_parent is None
