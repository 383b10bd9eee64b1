"""The engine's one clock. Every time the journal records comes from here (the app's clock).

Tests swap it for a fake one so waits and retry delays pass instantly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    return _clock()


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Make `clock` the engine's clock inside the block."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous


class FakeClock:
    """A clock that stands still until advanced."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance_to(self, when: datetime) -> None:
        if when > self.current:
            self.current = when
