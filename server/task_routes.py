"""Routes about one accepted task: its state (and, later, cancel and callback replay)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import redis
from fastapi import APIRouter, Depends, Request

from server.core.persistence import TaskPersistence
from server.errors import DependencyUnavailable, TaskNotFound
from server.schemas import ErrorResponse, TaskView, canonical_task_id

router = APIRouter(prefix="/api/v1/task")


async def get_persistence(request: Request) -> TaskPersistence:
    persistence: TaskPersistence = request.app.state.persistence
    return persistence


PersistenceDep = Annotated[TaskPersistence, Depends(get_persistence)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such task, or it expired (10006)"},
    503: {"model": ErrorResponse, "description": "Redis is unavailable (10007)"},
}


async def load_record(persistence: TaskPersistence, task_id: str) -> dict[str, Any]:
    """The task's record; `TaskNotFound` for a malformed, unknown or expired id."""
    try:
        canonical = canonical_task_id(task_id)
    except ValueError:
        raise TaskNotFound(f"no task {task_id!r}") from None
    try:
        record = await anyio.to_thread.run_sync(persistence.get_task, canonical)
    except redis.RedisError:
        raise DependencyUnavailable("the task store is unavailable; retry later") from None
    if record is None or "taskType" not in record:
        raise TaskNotFound(f"no task {canonical} (unknown, or expired after its result was kept)")
    record.setdefault("taskId", canonical)
    return record


@router.get("/{task_id}", response_model=TaskView, responses=_NOT_FOUND)
async def get_task(task_id: str, persistence: PersistenceDep) -> TaskView:
    """The task's state, times, result or error, and where its callback stands."""
    return TaskView.from_record(await load_record(persistence, task_id))
