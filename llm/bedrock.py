"""Summaries from Amazon Bedrock through the Converse API (any chat model Bedrock hosts)."""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore import exceptions as botocore_errors  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from llm import errors
from llm.conf import LLMConfig
from llm.prompt import build_prompt
from llm.steering import Feedback
from llm.types import Summary

PROVIDER = "bedrock"

_MESSAGE_LIMIT = 300

# Bedrock's error codes, by what a caller should do about them; unknown codes go by HTTP status.
_ERROR_CODES: dict[str, type[errors.LLMError]] = {
    "ThrottlingException": errors.RateLimitedError,
    "ServiceQuotaExceededException": errors.RateLimitedError,
    "ModelTimeoutException": errors.ProviderTimeoutError,
    "ServiceUnavailableException": errors.ProviderUnavailableError,
    "InternalServerException": errors.ProviderUnavailableError,
    "ModelNotReadyException": errors.ProviderUnavailableError,
    "AccessDeniedException": errors.AuthenticationError,
    "UnrecognizedClientException": errors.AuthenticationError,
    "InvalidSignatureException": errors.AuthenticationError,
    "ExpiredTokenException": errors.AuthenticationError,
    "ValidationException": errors.InvalidRequestError,
    "ResourceNotFoundException": errors.InvalidRequestError,
    "ModelErrorException": errors.PermanentLLMError,
}


def make_client(config: LLMConfig) -> Any:
    """A `bedrock-runtime` client that tries each call once, with LLM_TIMEOUT for connect and read."""
    client_config = Config(
        # One attempt in all: the durable step owns the retries. (botocore's `max_attempts` counts
        # retries after the first try, so {"max_attempts": 1} would still retry once.)
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=config.timeout,
        read_timeout=config.timeout,
    )
    # A session per client: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client(
        "bedrock-runtime",
        region_name=config.aws_region,
        endpoint_url=config.bedrock_endpoint_url,
        config=client_config,
    )


def summarize(
    text: str,
    *,
    title: str | None = None,
    instructions: str | None = None,
    feedback: Feedback = None,
    config: LLMConfig,
    client: Any = None,
) -> Summary:
    """Ask the Bedrock model for a summary. Raises a RetryableLLMError or PermanentLLMError subclass."""
    prompt = build_prompt(text, title=title, instructions=instructions, feedback=feedback)
    owned = client is None
    try:
        if client is None:
            client = make_client(config)
        response = client.converse(
            modelId=config.bedrock_model_id,
            system=[{"text": prompt.system}],
            messages=[{"role": "user", "content": [{"text": prompt.user}]}],
            inferenceConfig={"maxTokens": config.max_tokens},
        )
    except (botocore_errors.ClientError, botocore_errors.BotoCoreError) as exc:
        raise classify(exc) from exc
    finally:
        if owned and client is not None:
            client.close()
    blocks = response.get("output", {}).get("message", {}).get("content", [])
    content = "".join(block.get("text", "") for block in blocks)
    if not content.strip():
        raise errors.EmptyResponseError(
            f"model {config.bedrock_model_id!r} returned no summary text (stopReason {response.get('stopReason')!r})",
            provider=PROVIDER,
        )
    usage = response.get("usage", {})
    return Summary(
        text=content.strip(),
        provider=PROVIDER,
        model=config.bedrock_model_id,
        input_tokens=int(usage.get("inputTokens", 0)),
        output_tokens=int(usage.get("outputTokens", 0)),
    )


def classify(exc: Exception) -> errors.LLMError:
    """Map a botocore exception to our error classes (the caller chains it as `__cause__`)."""
    if isinstance(exc, botocore_errors.ClientError):
        return _classify_client_error(exc)
    if isinstance(exc, (botocore_errors.ReadTimeoutError, botocore_errors.ConnectTimeoutError)):
        return errors.ProviderTimeoutError("Bedrock request timed out (LLM_TIMEOUT)", provider=PROVIDER)
    if isinstance(exc, (botocore_errors.ConnectionError, botocore_errors.HTTPClientError)):
        return errors.ProviderUnavailableError(
            "could not connect to Bedrock (check AWS_REGION, BEDROCK_ENDPOINT_URL and the network)",
            provider=PROVIDER,
        )
    if isinstance(exc, (botocore_errors.NoCredentialsError, botocore_errors.PartialCredentialsError)):
        return errors.AuthenticationError(
            "no AWS credentials found (environment, profile or instance role)", provider=PROVIDER
        )
    return errors.PermanentLLMError(
        f"Bedrock client error: {str(exc)[:_MESSAGE_LIMIT]}", provider=PROVIDER, code=type(exc).__name__
    )


def _classify_client_error(exc: botocore_errors.ClientError) -> errors.LLMError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    kind = _ERROR_CODES.get(code)
    if kind is None:
        retryable = status is not None and (status == 429 or status >= 500)
        kind = errors.ProviderUnavailableError if retryable else errors.PermanentLLMError
    detail = str(error.get("Message") or "")[:_MESSAGE_LIMIT]
    where = f"{code}" + (f", HTTP {status}" if status else "")
    return kind(
        f"Bedrock converse failed ({where}): {detail or 'no message'}",
        provider=PROVIDER,
        status_code=status,
        code=code,
    )
