"""The history as attributes, the way the official testing runner hands it to tests.

Our history is the service's JSON shape (`{"Events": [{"EventType": ..., "Id": ...,
"CallbackStartedDetails": {"CallbackId": ...}}]}`); the official runner parses it into objects
(`history.events[0].event_type`, `.operation_id`, `.callback_started_details.callback_id`). A view
reads one from the other by name instead of declaring forty detail classes: `snake_case` attribute
names map to the `CamelCase` keys, an absent key reads None, an error reads as an `ErrorObject`.
The keys themselves still work (`view["Events"]`), for code written against our own runner.
"""

from __future__ import annotations

from typing import Any

from durable.errors import ErrorObject

# The official model's attribute names that are not the key's name in snake case.
_KEYS = {"operation_id": "Id"}


def _key(attribute: str) -> str:
    return _KEYS.get(attribute) or "".join(part[:1].upper() + part[1:] for part in attribute.split("_"))


def view(value: Any) -> Any:
    """`value` with its dicts (and the dicts in its lists) readable as attributes."""
    if isinstance(value, dict):
        return ErrorObject.from_dict(value) if "ErrorType" in value else RecordView(value)
    if isinstance(value, list):
        return [view(item) for item in value]
    return value


class RecordView:
    """One dict of the history (the response, an event, its details) read by attribute."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return view(self._data.get(_key(attribute)))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The history's own shape."""
        return self._data

    def __eq__(self, other: object) -> bool:
        return self._data == (other._data if isinstance(other, RecordView) else other)

    def __repr__(self) -> str:
        return f"RecordView({self._data!r})"
