"""What the worker does with one task id: load, infer, record, call back, clean up.

Plain class, no Celery in its interface, so tests and other runners can drive it directly.
Every run may be a redelivery of a message whose first run died; the record's guarded updates
make sure only one run ends the task and only that run sends the callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipelines.base import Pipeline, SourceImage
from server.core.callback import CallbackManager
from server.core.persistence import TaskPersistence
from server.core.status import CallbackStatus, TaskStatus
from server.core.storage import ImageMissing, LocalStorage
from server.errors import ErrorCode

logger = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    status: TaskStatus
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failure(cls, code: ErrorCode, message: str) -> Outcome:
        return cls(TaskStatus.FAILED, error={"code": int(code), "message": message})


class TaskProcessor:
    def __init__(
        self,
        persistence: TaskPersistence,
        storage: LocalStorage,
        callbacks: CallbackManager,
        pipelines: Mapping[str, Pipeline],
        *,
        max_attempts: int,
        keep_images: bool = False,
    ) -> None:
        self.persistence = persistence
        self.storage = storage
        self.callbacks = callbacks
        self.pipelines = pipelines
        self.max_attempts = max_attempts
        self.keep_images = keep_images

    def process(self, task_id: str) -> TaskStatus | None:
        """Run the task to its end; returns the final status, or None when there is no such task."""
        started = time.perf_counter()
        record = self.persistence.start_attempt(
            task_id, {"status": TaskStatus.PROCESSING, "startedAt": utc_now()}, count="attempts"
        )
        if record is None:
            logger.warning("task %s has no record (expired or never accepted); dropping it", task_id)
            return None
        status = TaskStatus(record["status"])
        if status.is_terminal():
            logger.info("task %s already %s; not running it again", task_id, status)
            return status
        attempt = int(record["attempts"])
        logger.debug("task %s started (attempt %d)", task_id, attempt)
        try:
            if attempt > self.max_attempts:
                outcome = Outcome.failure(
                    ErrorCode.INFERENCE_FAILED, f"AI inference failed: gave up after {self.max_attempts} attempts"
                )
            else:
                outcome = self._infer(task_id, record)
        finally:
            if not self.keep_images:
                self.storage.delete(record["imageKey"])
        return self._finish(task_id, record, outcome, started)

    def _infer(self, task_id: str, record: Mapping[str, Any]) -> Outcome:
        try:
            data = self.storage.read_bytes(record["imageKey"])
        except ImageMissing:
            logger.error("task %s: image %s not found", task_id, record["imageKey"])
            return Outcome.failure(ErrorCode.IMAGE_NOT_FOUND, "Image file not found")
        image = SourceImage(data=data, extension=record["imageKey"][record["imageKey"].rindex(".") :])
        try:
            result = self.pipelines[record["taskType"]].predict(image)
        except SoftTimeLimitExceeded:
            logger.error("task %s timed out", task_id)
            return Outcome.failure(ErrorCode.TASK_TIMED_OUT, "Task timed out")
        except Exception:
            logger.exception("task %s: inference failed", task_id)
            return Outcome.failure(ErrorCode.INFERENCE_FAILED, "AI inference failed")
        return Outcome(TaskStatus.SUCCEEDED, data=result)

    def _finish(self, task_id: str, record: Mapping[str, Any], outcome: Outcome, started: float) -> TaskStatus | None:
        ended = self.persistence.update_task(
            task_id,
            {
                "status": outcome.status,
                "completedAt": utc_now(),
                "data": outcome.data,
                "error": outcome.error,
                "callback": {"status": CallbackStatus.PENDING, "attempts": 0},
            },
        )
        if ended < 0:
            # Another run of the same message got there first; its result and callback stand.
            logger.info("task %s was ended by another run; discarding this result", task_id)
            return None
        payload = {
            "taskId": task_id,
            "taskType": record["taskType"],
            "status": outcome.status,
            "data": outcome.data,
            "error": outcome.error,
        }
        attempt = self.callbacks.deliver(record["callbackUrl"], payload)
        callback_state = {
            "status": CallbackStatus.DELIVERED if attempt.delivered else CallbackStatus.FAILED,
            "attempts": 1,
            "lastAttemptAt": utc_now(),
            "lastStatusCode": attempt.status_code,
            "lastError": attempt.error,
        }
        self.persistence.update_task(task_id, {"callback": callback_state}, unless_ended=False)
        took_ms = (time.perf_counter() - started) * 1000
        if attempt.delivered:
            logger.info(
                "task %s %s in %.1f ms; callback delivered (HTTP %s)",
                task_id, outcome.status, took_ms, attempt.status_code,
            )  # fmt: skip
        else:
            logger.error(
                "task %s %s in %.1f ms but its callback failed: %s", task_id, outcome.status, took_ms, attempt.error
            )
        return outcome.status
