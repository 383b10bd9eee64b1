"""Contexts handed to user code inside operations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol


class LoggerInterface(Protocol):
    def debug(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def info(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def warning(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def error(self, msg: object, *args: object, extra: Any = None) -> None: ...
    def exception(self, msg: object, *args: object, extra: Any = None) -> None: ...


@dataclass
class OperationContext:
    logger: LoggerInterface | logging.LoggerAdapter[logging.Logger]


@dataclass
class StepContext(OperationContext):
    """What a step body receives: a logger and the attempt number (1 for the first)."""

    attempt: int


@dataclass
class WaitForCallbackContext(OperationContext):
    pass


@dataclass
class WaitForConditionCheckContext(OperationContext):
    """What a wait_for_condition check receives: a logger and the poll's number (1 for the first)."""

    attempt: int
