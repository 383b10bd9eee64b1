"""Summaries from OpenAI's chat completions, or any server that speaks the same API (OPENAI_BASE_URL)."""

from __future__ import annotations

from typing import Any

import openai

from llm import errors
from llm.conf import LLMConfig
from llm.prompt import build_prompt
from llm.steering import Feedback
from llm.types import Summary

PROVIDER = "openai"

_MESSAGE_LIMIT = 300


def make_client(config: LLMConfig) -> openai.OpenAI:
    """An OpenAI client that never retries by itself. Raises ConfigurationError without an API key."""
    if not config.openai_api_key:
        raise errors.ConfigurationError(
            "OPENAI_API_KEY is not set (a local OpenAI-compatible server that ignores it still needs a value)",
            provider=PROVIDER,
        )
    return openai.OpenAI(
        api_key=config.openai_api_key,
        base_url=config.openai_base_url,
        max_retries=0,  # the durable step that calls us owns the retries
        timeout=config.timeout,
    )


def summarize(
    text: str,
    *,
    title: str | None = None,
    instructions: str | None = None,
    feedback: Feedback = None,
    config: LLMConfig,
    client: openai.OpenAI | None = None,
) -> Summary:
    """Ask the chat model for a summary. Raises a RetryableLLMError or PermanentLLMError subclass."""
    prompt = build_prompt(text, title=title, instructions=instructions, feedback=feedback)
    owned = client is None
    if client is None:
        client = make_client(config)
    try:
        completion = client.chat.completions.create(
            model=config.openai_model,
            messages=[
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        )
    except openai.OpenAIError as exc:
        raise classify(exc, secret=config.openai_api_key) from exc
    finally:
        if owned:
            client.close()
    content = completion.choices[0].message.content if completion.choices else None
    if not content or not content.strip():
        raise errors.EmptyResponseError(f"model {config.openai_model!r} returned no summary text", provider=PROVIDER)
    usage = completion.usage
    return Summary(
        text=content.strip(),
        provider=PROVIDER,
        model=completion.model or config.openai_model,
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )


def classify(exc: openai.OpenAIError, *, secret: str = "") -> errors.LLMError:
    """Map an openai exception to our error classes (the caller chains it as `__cause__`)."""
    if isinstance(exc, openai.APITimeoutError):
        return errors.ProviderTimeoutError("OpenAI request timed out (LLM_TIMEOUT)", provider=PROVIDER)
    if isinstance(exc, openai.APIConnectionError):
        return errors.ProviderUnavailableError(
            "could not connect to the OpenAI API (check OPENAI_BASE_URL and the network)", provider=PROVIDER
        )
    if not isinstance(exc, openai.APIStatusError):
        return errors.PermanentLLMError(
            f"OpenAI client error: {_redact(str(exc), secret)}", provider=PROVIDER, code=type(exc).__name__
        )
    status = exc.status_code
    code, detail = _error_fields(exc.body)
    detail = _redact(detail or exc.message, secret)
    where = f"HTTP {status}" + (f", {code}" if code else "")
    kind: type[errors.LLMError]
    if status == 429 and code == "insufficient_quota":
        kind, advice = errors.QuotaExceededError, "the account's quota is used up; check billing"
    elif status == 429:
        kind, advice = errors.RateLimitedError, "rate limited"
    elif status == 408:
        kind, advice = errors.ProviderTimeoutError, "the server timed out"
    elif status == 409 or status >= 500:
        kind, advice = errors.ProviderUnavailableError, "server error"
    elif status in (401, 403):
        kind, advice = errors.AuthenticationError, "rejected the credentials; check OPENAI_API_KEY"
    else:
        kind, advice = errors.InvalidRequestError, "rejected the request; check OPENAI_MODEL and the input"
    return kind(f"OpenAI {advice} ({where}): {detail}", provider=PROVIDER, status_code=status, code=code)


def _error_fields(body: Any) -> tuple[str | None, str]:
    # The client passes the JSON `error` object as `body` when the server sent one.
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type")
            return (str(code) if code else None), str(inner.get("message") or "")
    return None, ""


def _redact(message: str, secret: str) -> str:
    if secret:
        message = message.replace(secret, "[redacted]")
    return message[:_MESSAGE_LIMIT]
