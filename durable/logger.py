"""Loggers for handlers and steps: silent while replaying, tagged with execution and operation."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

logger = logging.getLogger("durable.handler")


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """Drops records while `is_replaying()` is true; adds the ids to every record it keeps."""

    def __init__(self, base: logging.Logger, extra: dict[str, Any], is_replaying: Callable[[], bool]) -> None:
        super().__init__(base, extra)
        self._is_replaying = is_replaying

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return not self._is_replaying() and self.logger.isEnabledFor(level)

    def with_extra(self, **extra: Any) -> ReplayAwareLogger:
        return ReplayAwareLogger(self.logger, {**(self.extra or {}), **extra}, self._is_replaying)
