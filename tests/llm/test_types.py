import dataclasses
import json

import pytest

from llm.types import Summary


def test_summary_is_frozen_and_json_ready():
    summary = Summary(text="Short.", provider="offline", model="sumy-lexrank", input_tokens=10, output_tokens=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.text = "changed"  # type: ignore[misc]
    assert json.loads(json.dumps(dataclasses.asdict(summary))) == {
        "text": "Short.",
        "provider": "offline",
        "model": "sumy-lexrank",
        "input_tokens": 10,
        "output_tokens": 1,
    }
