import subprocess
import sys
from pathlib import Path

import pytest

import llm
from llm import offline, services
from llm.conf import LLMConfig
from llm.errors import ConfigurationError, EmptyDocumentError
from llm.sentences import split_sentences, words
from tests.llm.helpers import picked


def with_words(sentences: list[str], *stems: str) -> set[int]:
    return {i for i, s in enumerate(sentences) if any(w.lower().startswith(stems) for w in words(s))}


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("no_network")
def test_offline_is_the_default(document):
    summary = llm.summarize(document, instructions="For the board.", feedback="Mention the volunteers.")
    assert summary.provider == "offline"
    assert summary == offline.summarize(
        document, instructions="For the board.", feedback="Mention the volunteers.", config=LLMConfig()
    )
    assert picked(summary.text, split_sentences(document))


@pytest.mark.usefixtures("no_network")
def test_summary_ratio_comes_from_settings(settings, document):
    sentences = split_sentences(document)
    assert len(picked(llm.summarize(document).text, sentences)) == 12
    settings.LLM = {"SUMMARY_RATIO": 0.6}
    assert len(picked(llm.summarize(document).text, sentences)) == 25


@pytest.mark.parametrize("text", ["", " \n\t"])
def test_blank_text_fails_before_any_provider_is_asked(settings, text):
    settings.LLM = {"PROVIDER": "openai"}  # no key: reaching the provider would raise ConfigurationError
    with pytest.raises(EmptyDocumentError, match="empty"):
        llm.summarize(text)


def test_unknown_provider(settings):
    settings.LLM = {"PROVIDER": "carrier-pigeon"}
    with pytest.raises(ConfigurationError, match="carrier-pigeon"):
        llm.summarize("Some text.")


def test_the_provider_gets_the_arguments_and_config(settings, monkeypatch):
    seen = {}

    def fake_summarize(text, *, instructions, feedback, config):
        seen.update(text=text, instructions=instructions, feedback=feedback, config=config)
        return llm.Summary(text="ok", provider="bedrock", model="m", input_tokens=1, output_tokens=1)

    from llm import bedrock

    monkeypatch.setattr(bedrock, "summarize", fake_summarize)
    settings.LLM = {"PROVIDER": "bedrock", "BEDROCK_MODEL_ID": "some-model"}
    assert llm.summarize("Doc.", instructions="I.", feedback="F.").text == "ok"
    assert (seen["text"], seen["instructions"], seen["feedback"]) == ("Doc.", "I.", "F.")
    assert seen["config"].bedrock_model_id == "some-model"


def test_the_title_reaches_the_provider_only_when_given(settings, monkeypatch):
    seen = []

    def fake_summarize(text, **kwargs):
        seen.append(kwargs.get("title", "absent"))
        return llm.Summary(text="ok", provider="openai", model="m", input_tokens=1, output_tokens=1)

    from llm import openai_chat

    monkeypatch.setattr(openai_chat, "summarize", fake_summarize)
    settings.LLM = {"PROVIDER": "openai", "OPENAI_API_KEY": "k"}
    llm.summarize("Doc.", title="The harbour")
    llm.summarize("Doc.")
    llm.combine(["One.", "Two."], title="The harbour")
    assert seen == ["The harbour", "absent", "The harbour"]


def test_the_offline_summarizer_uses_the_title(document):
    sentences = split_sentences(document)
    untitled = picked(llm.summarize(document).text, sentences)
    titled = picked(llm.summarize(document, title="The irrigation pipe and water use").text, sentences)
    assert titled != untitled
    about_water = with_words(sentences, "irrigat", "water", "pipe")
    assert len(about_water & set(titled)) > len(about_water & set(untitled))


def test_every_provider_module_exists():
    assert set(services.PROVIDER_MODULES) == {"offline", "openai", "bedrock"}
    for module in services.PROVIDER_MODULES.values():
        __import__(module)


def test_importing_llm_loads_no_client_library():
    script = (
        "import sys, llm; "
        "print(sorted(m for m in ('openai', 'boto3', 'nltk', 'sumy', 'numpy', 'nupunkt') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


def test_public_api():
    assert set(llm.__all__) == {
        "LLMError",
        "PermanentLLMError",
        "RetryableLLMError",
        "Summary",
        "combine",
        "input_budget",
        "split_parts",
        "summarize",
    }


def test_offline_combine_is_not_steered_by_the_chat_instructions():
    parts = [
        "Orders for parts rose in the long winter. The harbour reopened in March.",
        "One crane was replaced. The harbour's new quay opened in May, a year early.",
    ]
    combined = llm.combine(parts, title="The harbour")
    assert combined == offline.summarize("\n\n".join(parts), title="The harbour", config=LLMConfig())
    assert combined != offline.summarize(
        "\n\n".join(parts), title="The harbour", instructions=services.COMBINE_INSTRUCTIONS, config=LLMConfig()
    )
