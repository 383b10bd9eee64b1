"""Checks shared by the offline summarizer's tests."""


def picked(summary_text: str, sentences: list[str]) -> list[int]:
    """Indexes of the input sentences the summary is made of; fails unless it is exactly those, in order."""
    indexes, position = [], 0
    for index, sentence in enumerate(sentences):
        if summary_text.startswith(sentence, position):
            indexes.append(index)
            position += len(sentence) + 1  # joined by one space
    assert position == len(summary_text) + 1, f"not made of input sentences in order: {summary_text!r}"
    return indexes
