"""approvals.alignment: summary sentences linked to their source, and diffs between rounds."""

from __future__ import annotations

from approvals.alignment import align, diff_words, source_spans
from llm.conf import load_config
from llm.offline import summarize

SOURCE = (
    "Riverside council met on Monday.\n"
    "The weather on Monday was mild.\n\n"
    "The council voted seven to two to close the Riverside public library. "
    "The building will be sold next year. Residents protested outside the hall.\n\n"
    "The next meeting is in March."
)


def _sources(alignment):
    return [(s.text, s.sources, s.exact) for s in alignment.summary]


def test_verbatim_sentences_link_exactly_to_their_source_sentences():
    summary = "The council voted seven to two to close the Riverside public library. The next meeting is in March."
    alignment = align(SOURCE, summary)
    texts = [s.text for p in alignment.paragraphs for s in p if s.sentence is not None]
    assert [(i, exact) for _, i, exact in _sources(alignment)] == [
        ((texts.index(summary.split(". ")[0] + "."),), True),
        ((5,), True),
    ]
    assert texts[2].startswith("The council voted")


def test_an_offline_summary_is_linked_exactly_every_sentence():
    summary = summarize(SOURCE, title="Library to close", config=load_config()).text
    alignment = align(SOURCE, summary)
    assert alignment.summary
    assert all(s.exact and s.sources for s in alignment.summary)


def test_the_source_segments_are_the_source_text_and_marked_with_their_citing_sentences():
    summary = "The building will be sold next year."
    alignment = align(SOURCE, summary)
    rebuilt = "\n\n".join("".join(seg.text for seg in p) for p in alignment.paragraphs)
    assert rebuilt == SOURCE
    cited = [seg for p in alignment.paragraphs for seg in p if seg.summary]
    assert [(seg.text, seg.summary) for seg in cited] == [("The building will be sold next year.", (0,))]


def test_a_paraphrase_links_to_the_closest_source_sentence():
    summary = "Councillors decided, 7-2, that the Riverside library will close. People protested at the hall."
    alignment = align(SOURCE, summary)
    spans = source_spans(SOURCE)
    sentence = {SOURCE[a:b]: i for i, (a, b) in enumerate(spans)}
    first, second = alignment.summary
    assert not first.exact
    assert not second.exact
    assert sentence["The council voted seven to two to close the Riverside public library."] in first.sources
    assert second.sources == (sentence["Residents protested outside the hall."],)


def test_a_sentence_about_something_else_links_to_nothing():
    alignment = align(SOURCE, "Bananas are yellow fruit.")
    assert alignment.summary[0].sources == ()
    assert alignment.linked_sources == 0


def test_a_sentence_fusing_two_links_both():
    summary = "The council voted to close the library, and the building will be sold next year."
    first = align(SOURCE, summary).summary[0]
    assert len(first.sources) == 2


def test_diff_words_marks_removed_and_added_words_and_keeps_the_new_text():
    before = "The bridge opens in April. Cyclists can cross."
    after = "The footbridge opens in April. Cyclists can cross."
    changes = diff_words(before, after)
    assert [(c.kind, c.text.strip()) for c in changes if c.kind != "same"] == [
        ("removed", "bridge"),
        ("added", "footbridge"),
    ]
    assert "".join(c.text for c in changes if c.kind != "removed") == after
    assert "".join(c.text for c in changes if c.kind != "added") == before


def test_diff_of_equal_texts_is_one_same_run():
    assert [c.kind for c in diff_words("a b c", "a b c")] == ["same"]


def test_the_diff_html_escapes_and_labels_and_keeps_words_apart():
    from approvals.templatetags.approvals_ui import diff_html

    html = diff_html(diff_words("Bridge opens. <b>Ferry</b> stops.", "Bridge opens."))
    assert html == 'Bridge opens. <del><span class="sr-only">removed: </span>&lt;b&gt;Ferry&lt;/b&gt; stops.</del>'
