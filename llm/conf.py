"""LLM settings: `settings.LLM` (a dict) over defaults taken from environment variables.

Read on every call, never at import, so `override_settings` and pytest-django's `settings`
fixture switch providers in tests. Keys of `settings.LLM` and the variables they default to:

    PROVIDER              LLM_PROVIDER           offline (default) | openai | bedrock
    OPENAI_API_KEY        OPENAI_API_KEY         required for openai (any value for local servers)
    OPENAI_BASE_URL       OPENAI_BASE_URL        an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1
    OPENAI_MODEL          OPENAI_MODEL           gpt-4o-mini
    BEDROCK_MODEL_ID      BEDROCK_MODEL_ID       amazon.nova-micro-v1:0
    AWS_REGION            AWS_REGION             then AWS_DEFAULT_REGION, then us-east-1
    BEDROCK_ENDPOINT_URL  BEDROCK_ENDPOINT_URL   optional, e.g. a VPC endpoint or a test server
    TIMEOUT               LLM_TIMEOUT            seconds per call, 30
    MAX_TOKENS            LLM_MAX_TOKENS         Bedrock's maxTokens for the summary, 1024
    SUMMARY_RATIO         SUMMARY_RATIO          offline: share of sentences kept, 0 < r <= 1, 0.3
    INPUT_CHARS           LLM_INPUT_CHARS        the most characters one call summarizes (longer
                                                 documents go in parts); empty: the provider's
                                                 own (offline 20,000; openai, bedrock 48,000)

AWS credentials come from boto3's usual chain (environment, profile, instance role).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from llm.errors import ConfigurationError

PROVIDERS = ("offline", "openai", "bedrock")

# settings.LLM key -> (environment variable, default)
_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "PROVIDER": ("LLM_PROVIDER", "offline"),
    "OPENAI_API_KEY": ("OPENAI_API_KEY", ""),
    "OPENAI_BASE_URL": ("OPENAI_BASE_URL", ""),
    "OPENAI_MODEL": ("OPENAI_MODEL", "gpt-4o-mini"),
    "BEDROCK_MODEL_ID": ("BEDROCK_MODEL_ID", "amazon.nova-micro-v1:0"),
    "AWS_REGION": ("AWS_REGION", ""),
    "BEDROCK_ENDPOINT_URL": ("BEDROCK_ENDPOINT_URL", ""),
    "TIMEOUT": ("LLM_TIMEOUT", "30"),
    "MAX_TOKENS": ("LLM_MAX_TOKENS", "1024"),
    "SUMMARY_RATIO": ("SUMMARY_RATIO", "0.3"),
    "INPUT_CHARS": ("LLM_INPUT_CHARS", ""),
}
# The input budget of one call, per provider: the offline ranking is quadratic in sentences, and
# a chat model's context (about 4 characters a token) must hold the prompt and the answer too.
INPUT_CHARS = {"offline": 20_000, "openai": 48_000, "bedrock": 48_000}
MIN_INPUT_CHARS = 1_000


@dataclass(frozen=True)
class LLMConfig:
    """The settings one summarize call runs with."""

    provider: str = "offline"
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    bedrock_model_id: str = "amazon.nova-micro-v1:0"
    aws_region: str = "us-east-1"
    bedrock_endpoint_url: str | None = None
    timeout: float = 30.0
    max_tokens: int = 1024
    summary_ratio: float = 0.3
    input_chars: int = INPUT_CHARS["offline"]


def environment_defaults() -> dict[str, str]:
    """The defaults as the environment gives them, keyed like `settings.LLM`."""
    values = {key: os.environ.get(variable, default) for key, (variable, default) in _ENVIRONMENT.items()}
    if not values["AWS_REGION"]:
        values["AWS_REGION"] = os.environ.get("AWS_DEFAULT_REGION", "") or "us-east-1"
    return values


def _settings_overrides() -> dict[str, Any]:
    try:
        overrides = getattr(settings, "LLM", {})
    except ImproperlyConfigured:  # used outside a Django project: environment only
        return {}
    if not isinstance(overrides, dict):
        raise ConfigurationError("settings.LLM must be a dict", provider="config")
    unknown = sorted(set(overrides) - set(_ENVIRONMENT))
    if unknown:
        raise ConfigurationError(
            f"unknown key(s) in settings.LLM: {', '.join(unknown)}; known keys: {', '.join(_ENVIRONMENT)}",
            provider="config",
        )
    return overrides


def _number(values: dict[str, Any], key: str, kind: type[float] | type[int]) -> Any:
    try:
        return kind(values[key])
    except (TypeError, ValueError):
        variable = _ENVIRONMENT[key][0]
        raise ConfigurationError(
            f"LLM {key} ({variable}) must be a number, not {values[key]!r}", provider="config"
        ) from None


def load_config() -> LLMConfig:
    """Read the settings now. Raises ConfigurationError on an unknown provider or a value out of range."""
    values: dict[str, Any] = {**environment_defaults(), **_settings_overrides()}
    provider = str(values["PROVIDER"]).strip().lower()
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"unknown LLM provider {values['PROVIDER']!r} (LLM_PROVIDER); choose one of {', '.join(PROVIDERS)}",
            provider="config",
        )
    config = LLMConfig(
        provider=provider,
        openai_api_key=str(values["OPENAI_API_KEY"] or ""),
        openai_base_url=values["OPENAI_BASE_URL"] or None,
        openai_model=str(values["OPENAI_MODEL"]),
        bedrock_model_id=str(values["BEDROCK_MODEL_ID"]),
        aws_region=str(values["AWS_REGION"] or "us-east-1"),
        bedrock_endpoint_url=values["BEDROCK_ENDPOINT_URL"] or None,
        timeout=_number(values, "TIMEOUT", float),
        max_tokens=_number(values, "MAX_TOKENS", int),
        summary_ratio=_number(values, "SUMMARY_RATIO", float),
        input_chars=_number(values, "INPUT_CHARS", int) if values["INPUT_CHARS"] else INPUT_CHARS[provider],
    )
    if config.timeout <= 0:
        raise ConfigurationError("LLM TIMEOUT (LLM_TIMEOUT) must be more than 0 seconds", provider="config")
    if config.max_tokens <= 0:
        raise ConfigurationError("LLM MAX_TOKENS (LLM_MAX_TOKENS) must be more than 0", provider="config")
    if config.input_chars < MIN_INPUT_CHARS:
        raise ConfigurationError(
            f"LLM INPUT_CHARS (LLM_INPUT_CHARS) must be at least {MIN_INPUT_CHARS}", provider="config"
        )
    if not 0 < config.summary_ratio <= 1:
        raise ConfigurationError("LLM SUMMARY_RATIO must be more than 0 and at most 1", provider="config")
    return config
