"""The one entry point: summarize a document with the provider the settings choose."""

from __future__ import annotations

from importlib import import_module

from llm.conf import load_config
from llm.errors import EmptyDocumentError
from llm.types import Summary

# Imported on first use, so `import llm` loads neither openai, boto3 nor NLTK.
PROVIDER_MODULES = {
    "offline": "llm.offline",
    "openai": "llm.openai_chat",
    "bedrock": "llm.bedrock",
}


def summarize(text: str, *, instructions: str | None = None, feedback: str | None = None) -> Summary:
    """Summarize `text`, following `instructions` and a reviewer's revision request (`feedback`).

    The provider comes from settings.LLM / LLM_PROVIDER, read on every call. Raises
    EmptyDocumentError for blank text, ConfigurationError for bad settings, and otherwise a
    RetryableLLMError or PermanentLLMError subclass from the provider.
    """
    if not text or not text.strip():
        raise EmptyDocumentError("nothing to summarize: the text is empty or only whitespace")
    config = load_config()
    provider = import_module(PROVIDER_MODULES[config.provider])
    summary: Summary = provider.summarize(text, instructions=instructions, feedback=feedback, config=config)
    return summary
