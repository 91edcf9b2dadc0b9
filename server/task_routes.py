"""Routes about one accepted task: its state, cancelling it, replaying its callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
import redis
from fastapi import APIRouter, Depends, Request

from server.auth import TenantDep, task_ref
from server.errors import DependencyUnavailable, TaskNotFound
from server.lifecycle import TaskLifecycle
from server.schemas import ErrorResponse, TaskView, canonical_task_id

router = APIRouter(prefix="/api/v1/task")


async def get_lifecycle(request: Request) -> TaskLifecycle:
    lifecycle: TaskLifecycle = request.app.state.lifecycle
    return lifecycle


LifecycleDep = Annotated[TaskLifecycle, Depends(get_lifecycle)]


def _errors(**extra: str) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Missing or unknown API key (10005)",
        404: "No such task, another tenant's, or it expired (10006)",
        503: "Redis is unavailable (10007)",
    }
    described.update({int(status): text for status, text in extra.items()})
    return {status: {"model": ErrorResponse, "description": text} for status, text in described.items()}


async def _view(action: Callable[[str], dict[str, Any]], task_id: str, tenant: str) -> TaskView:
    try:
        canonical = canonical_task_id(task_id)
    except ValueError:
        raise TaskNotFound(f"no task {task_id!r}") from None
    try:
        record = await anyio.to_thread.run_sync(action, task_ref(tenant, canonical))
    except redis.RedisError:
        raise DependencyUnavailable("the task store is unavailable; retry later") from None
    return TaskView.from_record(record)


@router.get("/{task_id}", response_model=TaskView, responses=_errors())
async def get_task(task_id: str, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """The task's state, times, result or error, and where its callback stands."""
    return await _view(lifecycle.get, task_id, tenant)


@router.post("/{task_id}/cancel", response_model=TaskView, responses=_errors(**{"409": "Task already ended (10009)"}))
async def cancel_task(task_id: str, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """Cancel a queued or running task; it never runs or its result is discarded; callback 12005."""
    return await _view(lifecycle.cancel, task_id, tenant)


@router.post(
    "/{task_id}/callback/retry",
    status_code=202,
    response_model=TaskView,
    responses=_errors(**{"400": "The task has not ended yet (10001)"}),
)
async def retry_callback(task_id: str, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """Deliver the task's callback again now, with a fresh retry schedule."""
    return await _view(lifecycle.replay_callback, task_id, tenant)
