"""What an invocation's journal writes besides checkpoints: invokes' children, a race's
cancelled callbacks. A mixin of `LeasedJournal` (durable.store.base), kept in a module of its
own; the modules it calls build on base, so they are imported when called."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from durable.state import Checkpoint, ChildStart

if TYPE_CHECKING:
    from durable.store.base import LeasedJournal


class LeasedExtras:
    execution_id: str
    started_children: list[str]  # dispatched once the invocation ends

    def function_error(self, function_name: str) -> dict[str, Any] | None:
        from durable.store import children

        return children.function_error(function_name)

    def start_child(self, checkpoints: list[Checkpoint], child: ChildStart) -> None:
        from durable.store import children
        from durable.store.base import checkpoint_guard

        with checkpoint_guard(self.execution_id):
            self.started_children.append(children.start_child(cast("LeasedJournal", self), checkpoints, child))

    def cancel_callbacks(self, operation_ids: list[str], reason: str, now: datetime) -> list[str]:
        from durable.store import cancel
        from durable.store.base import checkpoint_guard

        with checkpoint_guard(self.execution_id):
            return cancel.cancel_callbacks(cast("LeasedJournal", self), operation_ids, reason, now)
