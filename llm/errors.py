"""What can go wrong when summarizing, sorted by whether trying again can help.

A durable step owns the retries (the clients' own retries are off), so every provider maps its
client's exceptions into these classes: retry on `RetryableLLMError` (or `error.retryable`),
fail at once on `PermanentLLMError`. The client's exception stays on `__cause__`.
"""

from __future__ import annotations

from typing import Any


class LLMError(Exception):
    """A summarizer failed; `retryable` tells whether the same call may succeed later."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (RQ stores failed jobs' exceptions).
        return (type(self), (self.message,), self.__dict__)


class RetryableLLMError(LLMError):
    """A transient failure: rate limit, timeout, lost connection, or a server-side error."""

    retryable = True


class PermanentLLMError(LLMError):
    """A failure that repeats until someone changes the request, the credentials or the settings."""

    retryable = False


class RateLimitedError(RetryableLLMError):
    """The provider throttled the call (HTTP 429, Bedrock ThrottlingException)."""


class ProviderTimeoutError(RetryableLLMError):
    """The call took longer than LLM_TIMEOUT, or the model timed out on the provider's side."""


class ProviderUnavailableError(RetryableLLMError):
    """The provider could not be reached, or answered with a server error (5xx)."""


class AuthenticationError(PermanentLLMError):
    """The credentials are missing, wrong, or not allowed to use this model (401/403)."""


class InvalidRequestError(PermanentLLMError):
    """The provider refused the request itself: bad parameters, unknown model, too long a document."""


class QuotaExceededError(PermanentLLMError):
    """The account has no quota left (OpenAI's `insufficient_quota`): waiting will not help."""


class EmptyResponseError(PermanentLLMError):
    """The provider answered without any summary text."""


class ConfigurationError(PermanentLLMError):
    """The LLM settings are wrong (unknown provider, missing key, ratio out of range)."""


class EmptyDocumentError(PermanentLLMError, ValueError):
    """There is nothing to summarize: the text is empty or only whitespace."""
