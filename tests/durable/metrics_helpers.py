"""Reading `/metrics` in tests: scrape with a token and look samples up by name and labels."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "test-metrics-token-" + "x" * 20


class Scrape:
    """One scrape's samples: `scrape["durable_x_total", {"label": "v"}]` (0 if absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __getitem__(self, key: str | tuple[str, dict[str, str]]) -> float:
        name, labels = (key, {}) if isinstance(key, str) else key
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for (sample, labels), _ in self.samples.items() if sample == name}


def scrape(client: Any, settings: Any) -> Scrape:
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "METRICS_TOKEN": TOKEN}
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())
