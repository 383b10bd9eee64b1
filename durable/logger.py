"""Loggers for handlers and steps: silent while replaying, tagged with execution and operation.

`ReplayAwareLogger` is the engine's own (over `logging`); `Logger` and `LogInfo` are the official
SDK's names, for a logger of the user's choosing (`DurableContext.set_logger`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, cast

from durable.types import LoggerInterface

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


@dataclass(frozen=True)
class LogInfo:
    """Where a log line comes from: the execution and, inside it, the context or operation."""

    execution_state: Any
    parent_id: str | None = None
    operation_id: str | None = None
    name: str | None = None
    attempt: int | None = None

    @classmethod
    def from_operation_identifier(cls, execution_state: Any, op_id: Any, attempt: int | None = None) -> LogInfo:
        """The info of an operation, from its `OperationIdentifier`."""
        return cls(execution_state, op_id.parent_id, op_id.operation_id, op_id.name, attempt)

    def with_parent_id(self, parent_id: str) -> LogInfo:
        return replace(self, parent_id=parent_id)


class Logger(ReplayAwareLogger):
    """The official SDK's replay-aware logger: wraps any logger with the five methods (a
    `logging.Logger`, Powertools', structlog's), adds `default_extra` to every line, and drops
    lines while `is_replaying()` is true. `DurableContext.set_logger` installs one."""

    def __init__(
        self,
        logger: LoggerInterface,
        default_extra: Mapping[str, object],
        is_replaying: Callable[[], bool] = lambda: False,
    ) -> None:
        # The wrapped logger need not be a logging.Logger: only its five methods are called.
        super().__init__(cast(logging.Logger, logger), dict(default_extra), is_replaying)

    @classmethod
    def from_log_info(
        cls, logger: LoggerInterface, info: LogInfo, is_replaying: Callable[[], bool] = lambda: False
    ) -> Logger:
        """A logger whose lines carry `info` (under the official SDK's keys)."""
        extra: dict[str, object] = {"executionArn": getattr(info.execution_state, "execution_id", None)}
        for key, value in (
            ("parentId", info.parent_id),
            ("operationName", info.name),
            ("operationId", info.operation_id),
        ):
            if value:
                extra[key] = value
        if info.attempt is not None:
            extra["attempt"] = info.attempt
        return cls(logger, extra, is_replaying)

    def with_log_info(self, info: LogInfo) -> Logger:
        return Logger.from_log_info(self.get_logger(), info, self._is_replaying)

    def with_is_replaying(self, is_replaying: Callable[[], bool]) -> Logger:
        return Logger(self.get_logger(), self.extra or {}, is_replaying)

    def with_extra(self, **extra: Any) -> Logger:
        return Logger(self.get_logger(), {**(self.extra or {}), **extra}, self._is_replaying)

    def get_logger(self) -> LoggerInterface:
        """The wrapped logger."""
        return cast(LoggerInterface, self.logger)

    def _emit(self, level: str, msg: object, args: tuple[object, ...], extra: Mapping[str, object] | None) -> None:
        if self._is_replaying():
            return
        getattr(self.logger, level)(msg, *args, extra={**(self.extra or {}), **(extra or {})})

    def debug(self, msg: object, *args: object, extra: Mapping[str, object] | None = None, **_: Any) -> None:
        self._emit("debug", msg, args, extra)

    def info(self, msg: object, *args: object, extra: Mapping[str, object] | None = None, **_: Any) -> None:
        self._emit("info", msg, args, extra)

    def warning(self, msg: object, *args: object, extra: Mapping[str, object] | None = None, **_: Any) -> None:
        self._emit("warning", msg, args, extra)

    def error(self, msg: object, *args: object, extra: Mapping[str, object] | None = None, **_: Any) -> None:
        self._emit("error", msg, args, extra)

    def exception(self, msg: object, *args: object, extra: Mapping[str, object] | None = None, **_: Any) -> None:
        self._emit("exception", msg, args, extra)
