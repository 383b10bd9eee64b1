import socket
from pathlib import Path

import pytest

from tests.llm.fakes import FakeServer

DATA = Path(__file__).parent / "data"

LLM_VARIABLES = (
    "LLM_PROVIDER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "BEDROCK_MODEL_ID",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "BEDROCK_ENDPOINT_URL",
    "LLM_TIMEOUT",
    "LLM_MAX_TOKENS",
    "SUMMARY_RATIO",
    "LLM_INPUT_CHARS",
)


class NetworkBlockedError(AssertionError):
    """An offline test tried to open a connection or resolve a name."""


@pytest.fixture(autouse=True)
def _clean_llm_settings(monkeypatch, settings):
    # The developer's own LLM_* variables or settings must not leak into these tests.
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings.LLM = {}


@pytest.fixture
def document() -> str:
    """An original 41-sentence report (a heading and nine paragraphs)."""
    return (DATA / "garden_report.txt").read_text(encoding="utf-8")


@pytest.fixture
def no_network(monkeypatch):
    """Fail any connection, name lookup or NLTK data lookup made during the test."""
    import nltk.data

    def blocked(*args, **kwargs):
        raise NetworkBlockedError(f"network or data access in an offline test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(nltk.data, "find", blocked)
    monkeypatch.setattr(nltk.data, "load", blocked)


@pytest.fixture
def fake_server():
    """A local HTTP server that answers with scripted replies and records the requests."""
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def aws_credentials(monkeypatch, tmp_path):
    """Dummy AWS credentials; the user's AWS files and the instance metadata service are never read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
