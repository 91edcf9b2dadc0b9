"""Changing an accepted task from the API: cancel it, or replay its callback."""

from __future__ import annotations

import logging
import time
from typing import Any

from server.core.clock import utc_now
from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.status import CANCELED, CallbackStatus, TaskStatus
from server.core.storage import ImageStorage, discard_image
from server.errors import RequestInvalid, TaskAlreadyFinished, TaskNotFound

logger = logging.getLogger(__name__)


class TaskLifecycle:
    """Blocking (Redis, files): call from a worker thread."""

    def __init__(self, persistence: TaskPersistence, storage: ImageStorage, *, keep_images: bool) -> None:
        self.persistence = persistence
        self.outbox = CallbackOutbox(persistence)
        self.storage = storage
        self.keep_images = keep_images

    def get(self, task_id: str) -> dict[str, Any]:
        """The record of `task_id` (a task reference: see `server.auth.task_ref`)."""
        record = self.persistence.get_task(task_id)
        if record is None or "taskType" not in record:
            raise TaskNotFound("no such task (unknown, or expired after its result was kept)")
        record.setdefault("taskId", task_id)
        return record

    def cancel(self, task_id: str) -> dict[str, Any]:
        """End a queued or running task as canceled (12005); a running one's result is discarded."""
        record = self.get(task_id)
        if not self.outbox.end_task(task_id, CANCELED):
            current = self.get(task_id)  # TaskNotFound when it expired meanwhile
            raise TaskAlreadyFinished(f"task {current['taskId']} already {current.get('status')}")
        logger.info("task %s canceled (was %s)", task_id, record.get("status"))
        if not self.keep_images:
            discard_image(self.storage, record)
        return self.get(task_id)

    def replay_callback(self, task_id: str) -> dict[str, Any]:
        """Owe the callback again from now, with a fresh retry schedule."""
        record = self.get(task_id)
        if not TaskStatus(record.get("status", TaskStatus.QUEUED)).is_terminal():
            raise RequestInvalid(f"task {record['taskId']} has not ended; its callback goes out when it does")
        state = dict(record.get("callback") or {})
        state.update(status=CallbackStatus.PENDING, failures=0, nextAttemptAt=utc_now())
        if not self.outbox.replay(task_id, state, time.time()):
            raise TaskNotFound(f"no task {record['taskId']} (it expired)")
        return self.get(task_id)
