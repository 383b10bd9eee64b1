"""The one entry point: summarize a document with the provider the settings choose."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib import import_module

from llm.conf import load_config
from llm.errors import EmptyDocumentError
from llm.steering import Feedback
from llm.types import Summary

# Imported on first use, so `import llm` loads neither openai, boto3 nor NLTK.
PROVIDER_MODULES = {
    "offline": "llm.offline",
    "openai": "llm.openai_chat",
    "bedrock": "llm.bedrock",
}


COMBINE_INSTRUCTIONS = (
    "The document is long, so it was summarized in parts. The text below is those parts' "
    "summaries, in the document's order, one paragraph each: write one summary of the whole document."
)


def summarize(
    text: str,
    *,
    title: str | None = None,
    instructions: str | None = None,
    feedback: Feedback = None,
    max_chars: int | None = None,
) -> Summary:
    """Summarize `text` (the document titled `title`: the offline summarizer prefers sentences about
    it, the chat models are shown it), following `instructions` and a reviewer's revision request
    (`feedback`), in at most `max_chars` characters if given (cut at a sentence's end if the model
    ran over).

    The provider comes from settings.LLM / LLM_PROVIDER, read on every call. Raises
    EmptyDocumentError for blank text, ConfigurationError for bad settings, and otherwise a
    RetryableLLMError or PermanentLLMError subclass from the provider.
    """
    if not text or not text.strip():
        raise EmptyDocumentError("nothing to summarize: the text is empty or only whitespace")
    config = load_config()
    provider = import_module(PROVIDER_MODULES[config.provider])
    if max_chars is not None:
        if config.provider == "offline":  # it keeps a share of the sentences: ask for a smaller one
            ratio = min(config.summary_ratio, max(max_chars / max(len(text), 1), 0.001))
            config = dataclasses.replace(config, summary_ratio=ratio)
        else:
            limit = f"Write at most {max(20, max_chars // 7)} words."
            instructions = f"{instructions.strip()}\n{limit}" if instructions and instructions.strip() else limit
    # Only when there is one, so a provider written before titles existed keeps working untitled.
    titled = {"title": title} if title is not None else {}
    summary: Summary = provider.summarize(text, instructions=instructions, feedback=feedback, config=config, **titled)
    return summary if max_chars is None else _fit(summary, max_chars)


def combine(part_summaries: Sequence[str], *, title: str | None = None, feedback: Feedback = None) -> Summary:
    """One summary of a long document (titled `title`) from its parts' summaries (in order),
    following the reviewer's `feedback`. Raises as `summarize` does."""
    # The instructions are for a chat model; the offline summarizer would take their words
    # ("long", "parts", "order") for the reviewer's focus and prefer sentences that use them.
    offline = load_config().provider == "offline"
    return summarize(
        "\n\n".join(s.strip() for s in part_summaries),
        title=title,
        instructions=None if offline else COMBINE_INSTRUCTIONS,
        feedback=feedback,
    )


def input_budget() -> int:
    """The most characters one call summarizes with the configured provider; longer documents
    go in parts (llm.parts.split_parts). Raises ConfigurationError for bad settings."""
    return load_config().input_chars


def _fit(summary: Summary, max_chars: int) -> Summary:
    """The summary cut after its last whole sentence within `max_chars` (the first sentence,
    cut at a word, if even that is longer)."""
    if len(summary.text) <= max_chars:
        return summary
    from llm.sentences import split_sentences

    kept = ""
    for sentence in split_sentences(summary.text):
        candidate = f"{kept} {sentence}" if kept else sentence
        if len(candidate) > max_chars:
            break
        kept = candidate
    if not kept:
        kept = summary.text[:max_chars].rsplit(" ", 1)[0] or summary.text[:max_chars]
    return dataclasses.replace(summary, text=kept)
