"""Deterministic operation ids: the n-th operation of a context, hashed with the context's id;
and time-ordered execution ids (`new_execution_id`).

The same scheme as the official SDK (blake2b of "<parent id>-<n>", or of "<n>" at the root,
as 64 hex characters), so journals and ids compare one to one.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from durable.exceptions import NonDeterministicExecutionError


# The same structure gives the same ids in every execution (the n-th operation at the root, the
# n-th of that context, ...): a worker replaying journals hashes each id once, not once per
# replay. 8,192 ids take about 2 MB.
@lru_cache(maxsize=8192)
def operation_id(parent_id: str | None, counter: int) -> str:
    raw = f"{parent_id}-{counter}" if parent_id else str(counter)
    return hashlib.blake2b(raw.encode()).hexdigest()[:64]


@dataclass(frozen=True)
class OperationIdNamespace:
    """The ids of one context's operations: the n-th is `operation_id(prefix, n)`, whenever asked."""

    prefix: str | None = None

    def create_id_for_step(self, step: int) -> str:
        return operation_id(self.prefix, step)


@dataclass(frozen=True)
class OperationIdentifier:
    """Who an operation is: id, type, sub type, parent and name, which a replay must find again."""

    operation_id: str
    sub_type: str
    parent_id: str | None = None
    name: str | None = None
    operation_type: str = field(kw_only=True)  # durable.state's OperationType, or its value

    @property
    def type(self) -> str:
        return self.operation_type

    def validate_checkpoint(self, checkpoint: Any) -> None:
        """Raise NonDeterministicExecutionError if the recorded operation `checkpoint` (anything with
        operation_type or type, sub_type, name, parent_id) is not this one; None passes."""
        if checkpoint is None:
            return
        recorded_type = getattr(checkpoint, "operation_type", None) or getattr(checkpoint, "type", None)
        pairs = {
            "type": (
                getattr(recorded_type, "value", recorded_type),
                getattr(self.operation_type, "value", self.operation_type),
            ),
            "subtype": (checkpoint.sub_type, self.sub_type),
            "name": (checkpoint.name or None, self.name or None),
            "parent_id": (checkpoint.parent_id or None, self.parent_id or None),
        }
        mismatches = [f"{what} checkpoint={old!r} current={new!r}" for what, (old, new) in pairs.items() if old != new]
        if mismatches:
            raise NonDeterministicExecutionError(
                f"Non-deterministic operation identity at id={self.operation_id!r}: {', '.join(mismatches)}",
                step_id=self.operation_id,
            )


def new_execution_id(at: datetime | None = None) -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562: 48 bits of Unix milliseconds, then 74 random
    bits), `at` or now. Every index that leads with an execution's id (its row, its operations,
    its history, its events) then takes new work at its right edge: with random (version 4) ids
    each new execution wrote a page of its own in each of them, about 15 pages per execution
    more beside 20,000 waiting executions than on an empty database (bench/scale_profile.py),
    and every such page is read, written to the WAL and checkpointed again."""
    millis = int(at.timestamp() * 1000) if at is not None else time.time_ns() // 1_000_000
    value = (millis & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC's variant
    return uuid.UUID(int=value)


def new_event_id(at: datetime | None = None) -> uuid.UUID:
    """An outbox event's id (EventBridge's `id`, a receiver's dedup key): time-ordered, as an
    execution's, for the same reason. With random ids each event wrote a page of its own in the
    events' key and in the deliveries' (event, sink) index."""
    return new_execution_id(at)
