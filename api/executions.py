"""Executions of any durable function, and their history (a scope of their own)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from ninja import Router

from api.auth import TokenAuth
from api.errors import ApiError
from api.http import TokenHttpRequest
from api.models import ApiToken, Scope
from api.responses import errors
from api.schemas import ExecutionOut, HistoryOut
from approvals.selectors import execution_is_started_by
from durable.client import Execution, get_execution, get_history, invoked_execution_ids
from durable.exceptions import ExecutionNotFoundError

router = Router(tags=["executions"], auth=TokenAuth(Scope.READ_EXECUTIONS, Scope.READ_ALL_EXECUTIONS))


def _load(request: TokenHttpRequest, execution_id: UUID) -> Execution:
    """The execution, if the token may read it: one its owner started (a document's), or any
    with the operators' scope. Another owner's execution is as unknown as a missing one."""
    token: ApiToken = request.auth
    operator = Scope.READ_ALL_EXECUTIONS in token.scope_list
    if not operator and not execution_is_started_by(user=token.owner, execution_id=execution_id):
        raise ApiError(404, "not_found", f"no execution {execution_id}")
    try:
        return get_execution(execution_id)
    except ExecutionNotFoundError:
        raise ApiError(404, "not_found", f"no execution {execution_id}") from None


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@router.get("/executions/{execution_id}", response={200: ExecutionOut, **errors(401, 403, 404, 422, 429)})
def get_execution_detail(request: TokenHttpRequest, execution_id: UUID) -> dict[str, Any]:
    """An execution: status, input, result or error, timings."""
    execution = _load(request, execution_id)
    return {
        "id": execution.pk,
        "function_name": execution.function_name,
        "execution_name": execution.execution_name,
        "status": execution.status,
        "input": _json(execution.input),
        "result": _json(execution.result),
        "error": execution.error,
        "created_at": execution.created_at,
        "updated_at": execution.updated_at,
        "ended_at": execution.ended_at,
        "timeout_at": execution.timeout_at,
        "invocation_count": execution.invocation_count,
        "parent_execution_id": execution.parent_execution_id,
        "parent_operation_id": execution.parent_operation_id,
        "invoked_execution_ids": invoked_execution_ids(execution.pk),
    }


@router.get("/executions/{execution_id}/history", response={200: HistoryOut, **errors(401, 403, 404, 422, 429)})
def get_execution_history(
    request: TokenHttpRequest, execution_id: UUID, include_execution_data: bool = True
) -> dict[str, Any]:
    """The execution's events in the shape of GetDurableExecutionHistory."""
    _load(request, execution_id)
    return get_history(execution_id, include_execution_data=include_execution_data)
