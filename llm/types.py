"""The value every provider returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """A summary and where it came from.

    Token counts are the provider's own (`usage`); the offline summarizer counts words instead.
    """

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
