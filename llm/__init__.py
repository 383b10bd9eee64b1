"""Summarizers behind one small interface: OpenAI, Amazon Bedrock, and an offline default (issue 6).

    summary = llm.summarize(text, instructions=None, feedback=None, max_chars=None)
    parts = llm.split_parts(text, llm.input_budget())      # long documents: (start, end) ranges
    summary = llm.combine([part summaries...], feedback=None)

The provider is chosen by settings (see `llm.conf`); errors are sorted into retryable and
permanent ones (see `llm.errors`).
"""

from llm.errors import LLMError, PermanentLLMError, RetryableLLMError
from llm.parts import split_parts
from llm.services import combine, input_budget, summarize
from llm.types import Summary

__all__ = [
    "LLMError",
    "PermanentLLMError",
    "RetryableLLMError",
    "Summary",
    "combine",
    "input_budget",
    "split_parts",
    "summarize",
]
