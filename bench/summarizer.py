"""How good the offline summarizer's picks are: ROUGE against reference summaries written for it.

    .venv/bin/python bench/summarizer.py            # the table by kind and overall
    .venv/bin/python bench/summarizer.py --time     # also: seconds for a 2 MB document

The evaluation set is bench/summaries/*.txt, original documents of five kinds (news, minutes,
reports, technical notes, e-mails), each with a reference summary written for these tests. A file
is a header (`title:`, `kind:`), a blank line, the reference, a line `=====`, then the document.

Three summarizers pick the same number of sentences from each document (the offline summarizer's
count at SUMMARY_RATIO 0.3):

* `offline`: llm.offline, given the document's title;
* `first-n`: the document's first N sentences (the lead baseline);
* `lexrank`: the offline summarizer before issue 18 (sumy's LexRank alone), kept here.

Scores are ROUGE-1, ROUGE-2 and ROUGE-L F1 from Google's `rouge-score` (Porter stemming from NLTK,
no data downloaded), averaged over documents.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm.conf import LLMConfig
from llm.offline import select_sentences, sentence_count
from llm.sentences import WordTokenizer, split_sentences, words
from llm.steering import Steering, stem

SET = Path(__file__).resolve().parent / "summaries"
RATIO = 0.3
METRICS = ("rouge1", "rouge2", "rougeL")
SEPARATOR = "====="


@dataclass(frozen=True)
class Example:
    """One document of the evaluation set and the summary a person wrote for it."""

    name: str
    kind: str
    title: str
    text: str
    reference: str


def load_set(folder: Path = SET) -> list[Example]:
    """Every example in `folder`, by file name. Raises ValueError for a malformed file."""
    examples = []
    for path in sorted(folder.glob("*.txt")):
        head, separator, text = path.read_text(encoding="utf-8").partition(f"\n{SEPARATOR}\n")
        if not separator:
            raise ValueError(f"{path.name}: no {SEPARATOR} line between the reference and the document")
        header, _, reference = head.partition("\n\n")
        fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line)
        if not {"title", "kind"} <= fields.keys():
            raise ValueError(f"{path.name}: the header needs title: and kind:")
        examples.append(Example(path.stem, fields["kind"], fields["title"], text.strip(), reference.strip()))
    return examples


Picker = Callable[[Example, int], str]


def sentences_of(example: Example) -> list[str]:
    return list(dict.fromkeys(split_sentences(example.text)))


def offline(example: Example, count: int) -> str:
    return " ".join(select_sentences(sentences_of(example), count, Steering(), title=example.title))


def first_n(example: Example, count: int) -> str:
    return " ".join(sentences_of(example)[:count])


def lexrank(example: Example, count: int) -> str:
    """The summarizer as it was before issue 18: sumy's LexRank alone, ties in document order."""
    import numpy
    from sumy.models.dom import ObjectDocumentModel, Paragraph, Sentence  # type: ignore[import-untyped]
    from sumy.summarizers.lex_rank import LexRankSummarizer  # type: ignore[import-untyped]
    from sumy.utils import get_stop_words  # type: ignore[import-untyped]

    sentences = sentences_of(example)
    tokenizer = WordTokenizer()
    document = ObjectDocumentModel([Paragraph([Sentence(s, tokenizer) for s in sentences])])
    summarizer = LexRankSummarizer(stem)
    summarizer.stop_words = get_stop_words("english")

    def pick(infos: Sequence[object]) -> list[object]:
        def key(info: object) -> tuple[float, int]:
            rating = float(info.rating)  # type: ignore[attr-defined]
            return (-(round(rating, 9) if math.isfinite(rating) else 0.0), info.order)  # type: ignore[attr-defined]

        return sorted(infos, key=key)[:count]

    with numpy.errstate(divide="ignore", invalid="ignore"):
        kept = summarizer(document, pick)
    return " ".join(str(s) for s in kept)


PICKERS: dict[str, Picker] = {"offline": offline, "first-n": first_n, "lexrank": lexrank}


def score(examples: Sequence[Example], pickers: dict[str, Picker] = PICKERS) -> dict[str, dict[str, list[float]]]:
    """{picker: {metric: [F1 per example]}}, each picker keeping the same number of sentences."""
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    results: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in pickers}
    for example in examples:
        count = sentence_count(len(sentences_of(example)), RATIO)
        for name, picker in pickers.items():
            scores = scorer.score(example.reference, picker(example, count))
            for metric in METRICS:
                results[name][metric].append(scores[metric].fmeasure)
    return results


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def table(examples: Sequence[Example]) -> str:
    """A Markdown table: mean F1 of each picker by kind and overall."""
    kinds = sorted({e.kind for e in examples})
    lines = [
        "| kind | documents | " + " | ".join(f"{p} R-1 / R-2 / R-L" for p in PICKERS) + " |",
        "|---|---|" + "---|" * len(PICKERS),
    ]
    for kind in [*kinds, "overall"]:
        subset = [e for e in examples if kind in ("overall", e.kind)]
        results = score(subset)
        cells = [" / ".join(f"{mean(results[p][m]):.3f}" for m in METRICS) for p in PICKERS]
        label = f"**{kind}**" if kind == "overall" else kind
        lines.append(f"| {label} | {len(subset)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def long_document(size: int = 2_000_000, seed: int = 18) -> str:
    """About `size` characters of sentences of random words from the evaluation set's vocabulary."""
    vocabulary = sorted({w.lower() for e in load_set() for w in words(e.text)})
    rng = random.Random(seed)
    paragraphs, length = [], 0
    while length < size:
        paragraph = " ".join(
            " ".join(rng.choice(vocabulary) for _ in range(rng.randint(6, 24))).capitalize() + "."
            for _ in range(rng.randint(2, 6))
        )
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def time_long_document() -> str:
    from llm.offline import summarize

    text = long_document()
    started = time.perf_counter()
    summary = summarize(text, title="A long document", config=LLMConfig(summary_ratio=RATIO))
    elapsed = time.perf_counter() - started
    return f"{len(text):,} characters summarized in {elapsed:.1f} s ({len(summary.text):,} characters kept)"


def main(argv: Sequence[str]) -> None:
    examples = load_set()
    print(f"{len(examples)} documents, {len({e.kind for e in examples})} kinds, ratio {RATIO}\n")
    print(table(examples))
    if "--time" in argv:
        print()
        print(time_long_document())


if __name__ == "__main__":
    main(sys.argv[1:])
