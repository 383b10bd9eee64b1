import openai
import pytest

import llm
from llm import errors, openai_chat
from llm.conf import LLMConfig
from llm.prompt import SYSTEM_PROMPT
from tests.llm.fakes import Reply, chat_completion, openai_error

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def use_openai(settings, fake_server):
    """Route llm.summarize to the fake OpenAI-compatible server."""
    settings.LLM = {
        "PROVIDER": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"{fake_server.url}/v1",
        "OPENAI_MODEL": "fake-model",
        "TIMEOUT": 5,
    }
    return fake_server


def test_success_sends_document_instructions_and_feedback(use_openai, document):
    use_openai.reply(Reply(200, chat_completion("The garden grew.", prompt_tokens=612, completion_tokens=5)))

    summary = llm.summarize(document, instructions="Write for the board.", feedback="Mention the food bank.")

    assert summary == llm.Summary(
        text="The garden grew.", provider="openai", model="fake-model-2026-01-01", input_tokens=612, output_tokens=5
    )
    [request] = use_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "fake-model"
    system, user = request.body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert document.strip() in user["content"]
    assert "Write for the board." in user["content"]
    assert "Mention the food bank." in user["content"]


def test_rate_limit_is_retryable_and_the_client_does_not_retry(use_openai, document):
    use_openai.reply(
        openai_error(429, "Rate limit reached for requests", "rate_limit_exceeded", "requests"),
        Reply(200, chat_completion("Second time lucky.")),
    )

    with pytest.raises(errors.RetryableLLMError) as caught:
        llm.summarize(document)
    assert isinstance(caught.value, errors.RateLimitedError)
    assert caught.value.retryable is True
    assert caught.value.status_code == 429
    assert isinstance(caught.value.__cause__, openai.RateLimitError)
    assert len(use_openai.requests) == 1  # max_retries=0: the durable step decides when to try again

    assert llm.summarize(document).text == "Second time lucky."
    assert len(use_openai.requests) == 2


def test_bad_credentials_are_permanent_and_the_key_stays_out_of_the_message(use_openai, document):
    use_openai.reply(openai_error(401, f"Incorrect API key provided: {API_KEY}.", "invalid_api_key"))

    with pytest.raises(errors.PermanentLLMError) as caught:
        llm.summarize(document)
    error = caught.value
    assert isinstance(error, errors.AuthenticationError)
    assert error.retryable is False
    assert (error.status_code, error.code) == (401, "invalid_api_key")
    assert "OPENAI_API_KEY" in str(error)
    assert API_KEY not in str(error)
    assert isinstance(error.__cause__, openai.AuthenticationError)
    assert len(use_openai.requests) == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (openai_error(400, "Invalid 'messages'", "invalid_value"), errors.InvalidRequestError),
        (openai_error(403, "Project has no access", "model_not_allowed"), errors.AuthenticationError),
        (openai_error(404, "The model does not exist", "model_not_found"), errors.InvalidRequestError),
        (openai_error(422, "Unprocessable", "bad_input"), errors.InvalidRequestError),
        (openai_error(429, "You exceeded your current quota", "insufficient_quota"), errors.QuotaExceededError),
        (openai_error(408, "Request timed out", "timeout", "server_error"), errors.ProviderTimeoutError),
        (openai_error(409, "Conflict", "conflict", "server_error"), errors.ProviderUnavailableError),
        (openai_error(500, "Internal error", "server_error", "server_error"), errors.ProviderUnavailableError),
        (openai_error(503, "Overloaded", "overloaded", "server_error"), errors.ProviderUnavailableError),
    ],
)
def test_status_codes_are_classified_without_client_retries(use_openai, document, reply, kind):
    use_openai.reply(reply)
    with pytest.raises(errors.LLMError) as caught:
        llm.summarize(document)
    assert type(caught.value) is kind
    assert caught.value.status_code == reply.status
    assert reply.body["error"]["message"] in str(caught.value)
    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert len(use_openai.requests) == 1


def test_timeout_is_retryable(use_openai, settings, document):
    settings.LLM = {**settings.LLM, "TIMEOUT": 0.2}
    use_openai.reply(Reply(200, chat_completion(), delay=1.0))
    with pytest.raises(errors.ProviderTimeoutError, match="timed out") as caught:
        llm.summarize(document)
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert len(use_openai.requests) == 1


def test_unreachable_server_is_retryable(settings, closed_port, document):
    settings.LLM = {
        "PROVIDER": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1",
    }
    with pytest.raises(errors.ProviderUnavailableError, match="OPENAI_BASE_URL") as caught:
        llm.summarize(document)
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_missing_key_is_a_configuration_error_and_sends_nothing(use_openai, settings, document):
    settings.LLM = {**settings.LLM, "OPENAI_API_KEY": ""}
    with pytest.raises(errors.ConfigurationError, match="OPENAI_API_KEY"):
        llm.summarize(document)
    assert use_openai.requests == []


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_empty_answer_is_permanent(use_openai, document, content):
    use_openai.reply(Reply(200, chat_completion(content)))
    with pytest.raises(errors.EmptyResponseError, match="no summary text"):
        llm.summarize(document)


def test_client_has_retries_off_and_the_configured_timeout():
    config = LLMConfig(openai_api_key=API_KEY, openai_base_url="http://127.0.0.1:9/v1", timeout=7.5)
    with openai_chat.make_client(config) as client:
        assert client.max_retries == 0
        assert client.timeout == 7.5
        assert str(client.base_url) == "http://127.0.0.1:9/v1/"
        assert client.api_key == API_KEY


def test_a_given_client_is_used_and_left_open(fake_server, document):
    fake_server.reply(Reply(200, chat_completion("Given client.")))
    config = LLMConfig(openai_api_key=API_KEY, openai_model="fake-model")
    with openai.OpenAI(api_key=API_KEY, base_url=f"{fake_server.url}/v1", max_retries=0) as client:
        summary = openai_chat.summarize(document, config=config, client=client)
        assert summary.text == "Given client."
        assert not client.is_closed()


def test_other_client_errors_are_permanent():
    error = openai_chat.classify(openai.OpenAIError(f"bad response for {API_KEY}"), secret=API_KEY)
    assert type(error) is errors.PermanentLLMError
    assert API_KEY not in str(error)
