import pickle

import pytest

from llm import errors


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        (errors.RateLimitedError, True),
        (errors.ProviderTimeoutError, True),
        (errors.ProviderUnavailableError, True),
        (errors.AuthenticationError, False),
        (errors.InvalidRequestError, False),
        (errors.QuotaExceededError, False),
        (errors.EmptyResponseError, False),
        (errors.ConfigurationError, False),
        (errors.EmptyDocumentError, False),
    ],
)
def test_every_error_is_either_retryable_or_permanent(kind, retryable):
    error = kind("boom")
    assert isinstance(error, errors.LLMError)
    assert error.retryable is retryable
    assert isinstance(error, errors.RetryableLLMError) is retryable
    assert isinstance(error, errors.PermanentLLMError) is not retryable


def test_attributes_and_message():
    error = errors.RateLimitedError("slow down", provider="openai", status_code=429, code="rate_limit_exceeded")
    assert str(error) == "slow down"
    assert (error.provider, error.status_code, error.code) == ("openai", 429, "rate_limit_exceeded")


def test_errors_survive_pickling():
    error = errors.InvalidRequestError("bad model", provider="bedrock", status_code=400, code="ValidationException")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.InvalidRequestError
    assert (str(copy), copy.provider, copy.status_code, copy.code) == (
        "bad model",
        "bedrock",
        400,
        "ValidationException",
    )


def test_empty_document_is_also_a_value_error():
    assert issubclass(errors.EmptyDocumentError, ValueError)
