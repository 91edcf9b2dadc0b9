"""Routes about one accepted task: its state, cancelling it, replaying its callback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Request

from server.auth import TenantDep, task_ref
from server.errors import TaskNotFound
from server.lifecycle import TaskLifecycle
from server.schemas import INTERNAL_ERROR, UNAUTHORIZED, TaskView, canonical_task_id, error_responses

router = APIRouter(prefix="/api/v1/task")


async def get_lifecycle(request: Request) -> TaskLifecycle:
    lifecycle: TaskLifecycle = request.app.state.lifecycle
    return lifecycle


LifecycleDep = Annotated[TaskLifecycle, Depends(get_lifecycle)]


# A path segment, so any text: an id that is not a canonical UUID v4 simply names no task (404).
TaskIdPath = Annotated[
    str,
    Path(
        alias="taskId",
        description="The taskId given at submission, either case; anything else names no task (404/10006)",
        examples=["1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"],
    ),
]


def _errors(extra: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    return error_responses(
        {
            401: UNAUTHORIZED,
            404: "No such task, another tenant's, or it expired (10006)",
            500: INTERNAL_ERROR,
            503: "Redis is unavailable (10007); retry after Retry-After seconds",
        }
        | dict(extra or {})
    )


async def _view(action: Callable[[str], dict[str, Any]], task_id: str, tenant: str) -> TaskView:
    try:
        canonical = canonical_task_id(task_id)
    except ValueError:
        raise TaskNotFound(f"no task {task_id!r}") from None
    # Redis being down is answered 503 by the app's error handlers.
    record = await anyio.to_thread.run_sync(action, task_ref(tenant, canonical))
    return TaskView.from_record(record)


@router.get("/{taskId}", response_model=TaskView, responses=_errors())
async def get_task(task_id: TaskIdPath, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """The task's state, times, result or error, and where its callback stands."""
    return await _view(lifecycle.get, task_id, tenant)


@router.post("/{taskId}/cancel", response_model=TaskView, responses=_errors({409: "Task already ended (10009)"}))
async def cancel_task(task_id: TaskIdPath, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """Cancel a queued or running task; it never runs or its result is discarded; callback 12005."""
    return await _view(lifecycle.cancel, task_id, tenant)


@router.post(
    "/{taskId}/callback/retry",
    status_code=202,
    response_model=TaskView,
    responses=_errors({400: "The task has not ended yet (10001)"}),
)
async def retry_callback(task_id: TaskIdPath, lifecycle: LifecycleDep, tenant: TenantDep) -> TaskView:
    """Deliver the task's callback again now, with a fresh retry schedule."""
    return await _view(lifecycle.replay_callback, task_id, tenant)
