"""The project's LOG_FORMAT: plain in development, JSON in production; JSON lines from a real
workflow run carry the execution's ids, the product's step lines among them."""

import importlib
import io
import json
import logging
import logging.config

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

import config.settings as module
import llm
from approvals import workflows
from approvals.services import document_submit
from durable.models import Operation
from durable.testing import DurableTestRunner
from llm.errors import RateLimitedError


def test_log_format_is_plain_in_development_json_in_production(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    try:
        importlib.reload(module)
        assert module.LOGGING["handlers"]["console"]["formatter"] == "plain"
        monkeypatch.setenv("DJANGO_ENV", "production")
        monkeypatch.setenv("DJANGO_DEBUG", "false")
        monkeypatch.setenv("DJANGO_SECRET_KEY", "log-format-" + "k9" * 30)
        importlib.reload(module)
        assert module.LOGGING["handlers"]["console"]["formatter"] == "json"
        monkeypatch.setenv("LOG_FORMAT", "plain")
        importlib.reload(module)
        assert module.LOGGING["handlers"]["console"]["formatter"] == "plain"
        monkeypatch.setenv("LOG_FORMAT", "xml")
        with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT"):
            importlib.reload(module)
    finally:
        for name in ("DJANGO_ENV", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "LOG_FORMAT"):
            monkeypatch.delenv(name, raising=False)
        importlib.reload(module)


@pytest.fixture
def json_console(monkeypatch):
    """The project's logging as LOG_FORMAT=json configures it, its console writing to a buffer."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    importlib.reload(module)
    logging.config.dictConfig(module.LOGGING)
    monkeypatch.delenv("LOG_FORMAT")
    importlib.reload(module)
    (console,) = [h for h in logging.getLogger().handlers if h.name == "console"]
    stream = io.StringIO()
    console.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.config.dictConfig(settings.LOGGING)  # as the test session had it


@pytest.mark.django_db
def test_a_documents_run_logs_json_lines_with_its_ids(json_console, monkeypatch):
    calls = []
    real = llm.summarize

    def flaky(text, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RateLimitedError("429 from the provider", provider="fake")
        return real(text, **kwargs)

    monkeypatch.setattr(llm, "summarize", flaky)
    submitter = get_user_model().objects.create_user("submitter")
    with DurableTestRunner(workflows.summarize_approve_persist) as runner:
        document = document_submit(
            title="Budget", text="The council approved a budget. It adds hours.", submitter=submitter
        )
        runner.wait_for_callback(str(document.execution_id))
    lines = json_console()
    (failed,) = [line for line in lines if line["message"].startswith("summarizer failed on attempt 1")]
    step = Operation.objects.get(execution_id=document.execution_id, name="summarize #1")
    assert failed["logger"] == "durable.handler"  # the step logger the product uses
    assert failed["level"] == "WARNING"
    assert failed["execution_id"] == str(document.execution_id)
    assert failed["operation_id"] == step.operation_id
    assert failed["operation_name"] == "summarize #1"
    assert failed["attempt"] == 1
    assert len(failed["invocation_id"]) == 32
    assert "time" in failed
