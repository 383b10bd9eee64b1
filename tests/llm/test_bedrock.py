import pytest
from botocore import exceptions as botocore_errors
from botocore.stub import Stubber

import llm
from llm import bedrock, errors
from llm.conf import LLMConfig
from llm.prompt import SYSTEM_PROMPT, build_prompt
from tests.llm.fakes import Reply, bedrock_error, converse_response

MODEL_ID = "amazon.nova-micro-v1:0"
CONFIG = LLMConfig(provider="bedrock", bedrock_model_id=MODEL_ID, aws_region="eu-west-1", max_tokens=300)

pytestmark = pytest.mark.usefixtures("aws_credentials")


@pytest.fixture
def use_bedrock(settings, fake_server):
    """Route llm.summarize to the fake Bedrock endpoint."""
    settings.LLM = {
        "PROVIDER": "bedrock",
        "BEDROCK_MODEL_ID": MODEL_ID,
        "AWS_REGION": "eu-west-1",
        "BEDROCK_ENDPOINT_URL": fake_server.url,
        "TIMEOUT": 5,
        "MAX_TOKENS": 300,
    }
    return fake_server


@pytest.fixture
def stubbed():
    """A real bedrock-runtime client whose responses come from botocore's Stubber."""
    client = bedrock.make_client(CONFIG)
    with Stubber(client) as stubber:
        yield client, stubber
    client.close()


def test_success_through_the_endpoint_url(use_bedrock, document):
    use_bedrock.reply(Reply(200, converse_response("The garden grew.", input_tokens=640, output_tokens=6)))

    summary = llm.summarize(document, instructions="Write for the board.", feedback="Mention the food bank.")

    assert summary == llm.Summary(
        text="The garden grew.", provider="bedrock", model=MODEL_ID, input_tokens=640, output_tokens=6
    )
    [request] = use_bedrock.requests
    assert request.path == f"/model/{MODEL_ID}/converse"
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["authorization"]  # signed for the region
    assert request.body["system"] == [{"text": SYSTEM_PROMPT}]
    assert request.body["inferenceConfig"] == {"maxTokens": 300}
    [message] = request.body["messages"]
    assert message["role"] == "user"
    [block] = message["content"]
    assert document.strip() in block["text"]
    assert "Write for the board." in block["text"]
    assert "Mention the food bank." in block["text"]


def test_throttling_over_http_is_retryable_and_tried_once(use_bedrock, document):
    use_bedrock.reply(bedrock_error(429, "ThrottlingException", "Too many requests, please wait."))
    with pytest.raises(errors.RetryableLLMError, match="ThrottlingException") as caught:
        llm.summarize(document)
    assert isinstance(caught.value, errors.RateLimitedError)
    assert isinstance(caught.value.__cause__, botocore_errors.ClientError)
    assert len(use_bedrock.requests) == 1  # max_attempts=1: botocore did not retry


def test_text_blocks_are_joined(stubbed):
    client, stubber = stubbed
    response = converse_response()
    response["output"]["message"]["content"] = [{"text": "First part. "}, {"text": "Second part."}]
    stubber.add_response("converse", response)
    assert bedrock.summarize("Some text.", config=CONFIG, client=client).text == "First part. Second part."


def test_request_parameters(stubbed, document):
    client, stubber = stubbed
    prompt = build_prompt(document, feedback="Shorter.")
    stubber.add_response(
        "converse",
        converse_response("Stubbed.", input_tokens=10, output_tokens=2),
        expected_params={
            "modelId": MODEL_ID,
            "system": [{"text": prompt.system}],
            "messages": [{"role": "user", "content": [{"text": prompt.user}]}],
            "inferenceConfig": {"maxTokens": 300},
        },
    )
    summary = bedrock.summarize(document, feedback="Shorter.", config=CONFIG, client=client)
    assert (summary.text, summary.input_tokens, summary.output_tokens) == ("Stubbed.", 10, 2)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 429, errors.RateLimitedError),
        ("ModelTimeoutException", 408, errors.ProviderTimeoutError),
        ("ServiceUnavailableException", 503, errors.ProviderUnavailableError),
        ("InternalServerException", 500, errors.ProviderUnavailableError),
        ("ModelNotReadyException", 429, errors.ProviderUnavailableError),
        ("SomethingNewException", 502, errors.ProviderUnavailableError),
    ],
)
def test_transient_errors_are_retryable(stubbed, code, status, kind):
    client, stubber = stubbed
    stubber.add_client_error("converse", service_error_code=code, service_message="try later", http_status_code=status)
    with pytest.raises(errors.RetryableLLMError) as caught:
        bedrock.summarize("Some text.", config=CONFIG, client=client)
    assert type(caught.value) is kind
    assert caught.value.retryable is True
    assert (caught.value.code, caught.value.status_code) == (code, status)
    assert code in str(caught.value)
    assert "try later" in str(caught.value)
    assert isinstance(caught.value.__cause__, botocore_errors.ClientError)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AccessDeniedException", 403, errors.AuthenticationError),
        ("UnrecognizedClientException", 403, errors.AuthenticationError),
        ("ValidationException", 400, errors.InvalidRequestError),
        ("ResourceNotFoundException", 404, errors.InvalidRequestError),
        ("ModelErrorException", 424, errors.PermanentLLMError),
        ("SomethingNewException", 400, errors.PermanentLLMError),
    ],
)
def test_request_and_credential_errors_are_permanent(stubbed, code, status, kind):
    client, stubber = stubbed
    stubber.add_client_error("converse", service_error_code=code, service_message="no", http_status_code=status)
    with pytest.raises(errors.PermanentLLMError) as caught:
        bedrock.summarize("Some text.", config=CONFIG, client=client)
    assert type(caught.value) is kind
    assert caught.value.retryable is False
    assert code in str(caught.value)
    assert isinstance(caught.value.__cause__, botocore_errors.ClientError)


def test_empty_answer_is_permanent(stubbed):
    client, stubber = stubbed
    stubber.add_response("converse", converse_response(""))
    with pytest.raises(errors.EmptyResponseError, match="end_turn"):
        bedrock.summarize("Some text.", config=CONFIG, client=client)


def test_timeout_is_retryable(use_bedrock, settings, document):
    settings.LLM = {**settings.LLM, "TIMEOUT": 0.3}
    use_bedrock.reply(Reply(200, converse_response(), delay=1.0))
    with pytest.raises(errors.ProviderTimeoutError, match="timed out") as caught:
        llm.summarize(document)
    assert isinstance(caught.value.__cause__, botocore_errors.ReadTimeoutError)
    assert len(use_bedrock.requests) == 1


def test_unreachable_endpoint_is_retryable(settings, closed_port, document):
    settings.LLM = {"PROVIDER": "bedrock", "BEDROCK_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}"}
    with pytest.raises(errors.ProviderUnavailableError, match="BEDROCK_ENDPOINT_URL") as caught:
        llm.summarize(document)
    assert isinstance(caught.value.__cause__, botocore_errors.EndpointConnectionError)


def test_missing_credentials_are_permanent(use_bedrock, monkeypatch, document):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(errors.AuthenticationError, match="no AWS credentials"):
        llm.summarize(document)
    assert use_bedrock.requests == []


def test_client_tries_once_with_the_configured_timeouts_region_and_endpoint():
    config = LLMConfig(aws_region="ap-southeast-2", bedrock_endpoint_url="http://127.0.0.1:9", timeout=12.0)
    client = bedrock.make_client(config)
    try:
        assert client.meta.config.retries["total_max_attempts"] == 1
        assert client.meta.config.read_timeout == 12.0
        assert client.meta.config.connect_timeout == 12.0
        assert client.meta.region_name == "ap-southeast-2"
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
    finally:
        client.close()


def test_default_endpoint_is_the_regional_one():
    client = bedrock.make_client(LLMConfig(aws_region="us-west-2"))
    try:
        assert client.meta.endpoint_url == "https://bedrock-runtime.us-west-2.amazonaws.com"
    finally:
        client.close()
