import pytest
from django.conf import LazySettings

from llm import conf
from llm.conf import LLMConfig, load_config
from llm.errors import ConfigurationError, PermanentLLMError


def test_defaults_without_environment_or_settings():
    assert load_config() == LLMConfig(
        provider="offline",
        openai_api_key="",
        openai_base_url=None,
        openai_model="gpt-4o-mini",
        bedrock_model_id="amazon.nova-micro-v1:0",
        aws_region="us-east-1",
        bedrock_endpoint_url=None,
        timeout=30.0,
        max_tokens=1024,
        summary_ratio=0.3,
    )


def test_environment_variables(monkeypatch):
    for name, value in {
        "LLM_PROVIDER": "OpenAI",
        "OPENAI_API_KEY": "sk-env",
        "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1",
        "OPENAI_MODEL": "local-model",
        "BEDROCK_MODEL_ID": "anthropic.some-model",
        "AWS_REGION": "eu-central-1",
        "BEDROCK_ENDPOINT_URL": "http://127.0.0.1:9000",
        "LLM_TIMEOUT": "12.5",
        "LLM_MAX_TOKENS": "256",
        "SUMMARY_RATIO": "0.2",
        "LLM_INPUT_CHARS": "30000",
    }.items():
        monkeypatch.setenv(name, value)
    assert load_config() == LLMConfig(
        provider="openai",
        openai_api_key="sk-env",
        openai_base_url="http://127.0.0.1:8080/v1",
        openai_model="local-model",
        bedrock_model_id="anthropic.some-model",
        aws_region="eu-central-1",
        bedrock_endpoint_url="http://127.0.0.1:9000",
        timeout=12.5,
        max_tokens=256,
        summary_ratio=0.2,
        input_chars=30000,
    )


def test_aws_default_region_is_the_fallback(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    assert load_config().aws_region == "sa-east-1"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert load_config().aws_region == "eu-north-1"


def test_settings_win_over_environment_and_are_read_on_every_call(settings, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    settings.LLM = {"PROVIDER": "bedrock", "SUMMARY_RATIO": 0.5}
    config = load_config()
    assert (config.provider, config.summary_ratio, config.openai_model) == ("bedrock", 0.5, "from-env")
    settings.LLM = {"PROVIDER": "offline"}
    assert load_config().provider == "offline"


def test_without_django_settings_the_environment_is_used(monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setattr(conf, "settings", LazySettings())
    monkeypatch.setenv("LLM_PROVIDER", "bedrock")
    assert load_config().provider == "bedrock"


def test_api_key_is_not_in_the_repr():
    assert "sk-secret" not in repr(LLMConfig(openai_api_key="sk-secret"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"PROVIDER": "anthropic"}, "unknown LLM provider 'anthropic'"),
        ({"OPENAI_KEY": "sk-typo"}, "unknown key.*OPENAI_KEY"),
        ({"TIMEOUT": "soon"}, r"TIMEOUT \(LLM_TIMEOUT\) must be a number"),
        ({"TIMEOUT": 0}, "more than 0 seconds"),
        ({"MAX_TOKENS": -1}, "MAX_TOKENS"),
        ({"SUMMARY_RATIO": 0}, "SUMMARY_RATIO"),
        ({"SUMMARY_RATIO": 1.5}, "SUMMARY_RATIO"),
        ({"SUMMARY_RATIO": None}, "SUMMARY_RATIO.*must be a number"),
    ],
)
def test_bad_settings_are_configuration_errors(settings, overrides, message):
    settings.LLM = overrides
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_config()
    assert isinstance(caught.value, PermanentLLMError)


def test_settings_llm_must_be_a_dict(settings):
    settings.LLM = [("PROVIDER", "openai")]
    with pytest.raises(ConfigurationError, match="must be a dict"):
        load_config()


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("SUMMARY_RATIO", "a third")
    with pytest.raises(ConfigurationError, match=r"SUMMARY_RATIO \(SUMMARY_RATIO\) must be a number, not 'a third'"):
        load_config()
