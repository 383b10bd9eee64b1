"""OpenTelemetry spans: one per invocation, a child per step attempt, under the request that
started the execution.

Active only when there is somewhere to send spans: a provider given to `use` (tests, or a
project that keeps its own out of the global one), a provider the project set globally
(`opentelemetry.trace.set_tracer_provider`), or the settings ask for it (`DURABLE_TRACING`, or
`OTEL_EXPORTER_OTLP_ENDPOINT`: the engine then sets up the SDK with the OTLP/HTTP exporter,
which reads the standard OTEL_* variables). Otherwise an invocation pays one check and a step
one context-variable read: no span, no SDK import.

Linking: `start_execution` stores the W3C traceparent of the span it runs in (the web request's,
made by `TracingMiddleware`) with the execution; each invocation's span is that span's child, so
an execution's invocations, days apart, sit in the trace of the request that started it. An
execution started outside any span gets a trace per invocation, found by `durable.execution.id`.

This module imports no Django (the step operation, in the replay core, uses it); the settings
reach it through `set_enabled_check`, which the app's `ready` calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "durable"
# Spans a forked work-horse ends are flushed before it exits (it never runs atexit hooks).
_HOME_PID = os.getpid()
_FLUSH_MILLIS = 5000

_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_override: TracerProvider | None = None
_enabled_by_settings: Callable[[], bool] = lambda: False  # noqa: E731 - replaced at start-up
# The invocation's tracer, for its steps (None: no tracing, the common case).
_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("durable_tracer", default=None)
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


class _StepRecord(Protocol):
    """What a step span reads of the step's record when the attempt ends."""

    status: Any
    error: dict[str, Any] | None
    next_attempt_at: Any


def use(provider: TracerProvider | None) -> None:
    """Trace with `provider` whatever the settings say; None: back to the usual choice."""
    global _override
    _override = provider


def set_enabled_check(check: Callable[[], bool]) -> None:
    """Say how to read the settings that switch tracing on (called once, at start-up)."""
    global _enabled_by_settings
    _enabled_by_settings = check


def provider() -> TracerProvider | None:
    """The provider to trace with, or None when tracing is off (the cheap check)."""
    if _override is not None:
        return _override
    current = trace.get_tracer_provider()
    if not isinstance(current, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return current  # the project set one
    if _enabled_by_settings():
        return _configure_otlp()
    return None


def _configure_otlp() -> TracerProvider:
    """Set up the SDK with the OTLP/HTTP exporter as the global provider (once per process)."""
    with _lock:
        current = trace.get_tracer_provider()
        if not isinstance(current, trace.ProxyTracerProvider):
            return current
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names the service; else "durable".
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "durable"}))
        sdk = SdkTracerProvider(resource=resource)
        sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(sdk)
        return trace.get_tracer_provider()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span this code runs in, if any (what an execution stores)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def invocation_span(
    execution_id: str, attributes: Callable[[], Mapping[str, Any]], trace_parent: str | None
) -> Iterator[Callable[[str | None], None]]:
    """A span around one invocation, child of the span that started the execution; yields a
    function to call with the execution's status afterwards (None: the invocation recorded no end).
    `attributes` is called only when tracing is on."""
    tracing = provider()
    if tracing is None:
        yield _ignore
        return
    tracer = tracing.get_tracer(TRACER_NAME)
    parent = _propagator.extract({"traceparent": trace_parent}) if trace_parent else None
    with (
        tracer.start_as_current_span(
            "durable invocation",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"durable.execution.id": execution_id, **attributes()},
        ) as span,
        _bind_tracer(tracer),
    ):
        yield lambda status: _invocation_ended(span, status)
    if os.getpid() != _HOME_PID:
        _flush(tracing)


def _ignore(_: str | None) -> None:
    pass


def _invocation_ended(span: Span, status: str | None) -> None:
    span.set_attribute("durable.execution.status", status or "UNRECORDED")
    if status in ("FAILED", "TIMED_OUT"):
        span.set_status(Status(StatusCode.ERROR, f"the execution ended {status}"))


@contextmanager
def _bind_tracer(tracer: Tracer) -> Iterator[None]:
    token = _tracer.set(tracer)
    try:
        yield
    finally:
        _tracer.reset(token)


def _flush(tracing: TracerProvider) -> None:
    flush = getattr(tracing, "force_flush", None)
    if flush is not None:
        flush(_FLUSH_MILLIS)


def step_span(
    execution_id: str, operation_id: str, name: str | None, attempt: int, record: _StepRecord
) -> AbstractContextManager[Any]:
    """A span around one attempt of a step (a shared no-op when the invocation is not traced).
    Its outcome comes from the step's record when the attempt ends: succeeded, retrying (with
    the error and the next attempt's time), failed, or interrupted."""
    tracer = _tracer.get()
    if tracer is None:
        return _NO_SPAN
    return _step_span(tracer, execution_id, operation_id, name, attempt, record)


@contextmanager
def _step_span(
    tracer: Tracer, execution_id: str, operation_id: str, name: str | None, attempt: int, record: _StepRecord
) -> Iterator[None]:
    attributes: dict[str, Any] = {
        "durable.execution.id": execution_id,
        "durable.operation.id": operation_id,
        "durable.operation.name": name or "",
        "durable.step.attempt": attempt,
    }
    with tracer.start_as_current_span(
        f"step {name}" if name else "step",
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        finally:
            _step_ended(span, record)


def _step_ended(span: Span, record: _StepRecord) -> None:
    status = getattr(record.status, "value", record.status)
    outcome = {"SUCCEEDED": "succeeded", "PENDING": "retrying", "FAILED": "failed"}.get(status, "interrupted")
    span.set_attribute("durable.step.outcome", outcome)
    if outcome == "retrying" and record.next_attempt_at is not None:
        span.set_attribute("durable.step.next_attempt_at", record.next_attempt_at.isoformat())
    if outcome in ("retrying", "failed") and record.error:
        error_type = str(record.error.get("ErrorType") or "")
        message = str(record.error.get("ErrorMessage") or "")
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}" if message else error_type))


class TracingMiddleware:
    """A server span per HTTP request (continuing the caller's traceparent header, if any), so
    executions the request starts are linked to it. Passes straight through when tracing is off."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        tracing = provider()
        if tracing is None:
            return self.get_response(request)
        carrier = {key: request.headers[key] for key in ("traceparent", "tracestate") if key in request.headers}
        with tracing.get_tracer(TRACER_NAME).start_as_current_span(
            f"{request.method} {request.path}",
            context=_propagator.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            response = self.get_response(request)
            span.set_attribute("http.response.status_code", response.status_code)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.route:
                span.set_attribute("http.route", match.route)
                span.update_name(f"{request.method} {match.route}")
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response
