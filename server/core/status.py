"""Task lifecycle states."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.errors import ErrorCode


class TaskStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED})


class CallbackStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """How a task ended: what its record keeps and its callback carries."""

    status: TaskStatus
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failure(cls, code: ErrorCode, message: str, status: TaskStatus = TaskStatus.FAILED) -> Outcome:
        return cls(status, error={"code": int(code), "message": message})


TIMED_OUT = Outcome.failure(ErrorCode.TASK_TIMED_OUT, "Task timed out")
CANCELED = Outcome.failure(ErrorCode.TASK_CANCELED, "Task canceled", TaskStatus.CANCELED)
