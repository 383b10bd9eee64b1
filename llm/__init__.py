"""Summarizers behind one small interface: OpenAI, Amazon Bedrock, and an offline default (issue 6).

    summary = llm.summarize(text, instructions=None, feedback=None)

The provider is chosen by settings (see `llm.conf`); errors are sorted into retryable and
permanent ones (see `llm.errors`).
"""

from llm.errors import LLMError, PermanentLLMError, RetryableLLMError
from llm.services import summarize
from llm.types import Summary

__all__ = ["LLMError", "PermanentLLMError", "RetryableLLMError", "Summary", "summarize"]
