"""The product follows its executions to every end through the engine's signal (never by
polling the journal); the work is done by approvals.services.document_follow_execution."""

from __future__ import annotations

from typing import Any

from approvals import services


def execution_status_changed(
    sender: Any,
    *,
    execution_id: str,
    function_name: str,
    status: str,
    previous_status: str,
    error: dict[str, Any] | None,
    timestamp: Any,
    **kwargs: Any,
) -> None:
    if function_name != services.DOCUMENT_WORKFLOW:
        return
    services.document_follow_execution(
        execution_id=execution_id, status=status, previous_status=previous_status, error=error, timestamp=timestamp
    )
