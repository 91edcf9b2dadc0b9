"""What the worker does with one task id: load, infer, record, clean up, call back.

Plain class, no Celery in its interface beyond the time-limit exception, so tests and other
runners can drive it directly. Every run may be a redelivery of a message whose first run died:
the record's guarded updates make sure only one run ends the task, and a task that ended without
its callback going out (its run died in between) gets the callback from the next delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipelines.base import Pipeline, SourceImage
from server.core.callback import CallbackManager, DeliveryAttempt
from server.core.clock import utc_now
from server.core.persistence import TaskPersistence
from server.core.status import CallbackStatus, TaskStatus
from server.core.storage import ImageMissing, LocalStorage
from server.errors import ErrorCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: TaskStatus
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def failure(cls, code: ErrorCode, message: str) -> Outcome:
        return cls(TaskStatus.FAILED, error={"code": int(code), "message": message})


TIMED_OUT = Outcome.failure(ErrorCode.TASK_TIMED_OUT, "Task timed out")


def end_task(persistence: TaskPersistence, task_id: str, outcome: Outcome) -> bool:
    """Record the final state unless another run got there first; True when this call ended it."""
    fields = {
        "status": outcome.status,
        "completedAt": utc_now(),
        "data": outcome.data,
        "error": outcome.error,
        "callback": {"status": CallbackStatus.PENDING, "attempts": 0},
    }
    return persistence.update_task(task_id, fields) >= 0


def discard_image(storage: LocalStorage, record: Mapping[str, Any]) -> None:
    if "imageKey" in record:
        storage.delete(record["imageKey"])
    elif "imagePath" in record:  # a record written the seed's way, naming a file directly
        Path(record["imagePath"]).unlink(missing_ok=True)


def load_image(storage: LocalStorage, record: Mapping[str, Any]) -> SourceImage:
    """The task's image; `ImageMissing` when it is gone."""
    if "imageKey" in record:
        key: str = record["imageKey"]
        return SourceImage(data=storage.read_bytes(key), extension=key[key.rindex(".") :])
    path = Path(record.get("imagePath") or "")
    try:
        return SourceImage(data=path.read_bytes(), extension=path.suffix.lower())
    except (FileNotFoundError, IsADirectoryError):
        raise ImageMissing(str(path)) from None


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
        """Run the task to its end; returns the final status, or None when there is no such task.

        Redis errors propagate: the caller puts the message back rather than lose the task.
        """
        started = time.perf_counter()
        record = self.persistence.start_attempt(
            task_id, {"status": TaskStatus.PROCESSING, "startedAt": utc_now()}, count="attempts"
        )
        if record is None:
            logger.warning("task %s has no record (expired or never accepted); dropping it", task_id)
            return None
        status = TaskStatus(record["status"])
        if status.is_terminal():
            self.deliver_pending(task_id, record)
            return status
        attempt = int(record["attempts"])
        logger.debug("task %s started (attempt %d)", task_id, attempt)
        if attempt > self.max_attempts:
            outcome = Outcome.failure(
                ErrorCode.INFERENCE_FAILED, f"AI inference failed: gave up after {self.max_attempts} attempts"
            )
        else:
            outcome = self._infer(task_id, record)
        if not end_task(self.persistence, task_id, outcome):
            logger.info("task %s was ended by another run; discarding this result", task_id)
            return None
        if not self.keep_images:
            discard_image(self.storage, record)
        self._deliver(task_id, record, outcome, started)
        return outcome.status

    def deliver_pending(self, task_id: str, record: Mapping[str, Any] | None = None) -> None:
        """Send the callback of an ended task whose callback never went out."""
        record = record if record is not None else self.persistence.get_task(task_id)
        if record is None or not TaskStatus(record.get("status", TaskStatus.QUEUED)).is_terminal():
            return
        if (record.get("callback") or {}).get("status") != CallbackStatus.PENDING:
            logger.info("task %s already %s; not running it again", task_id, record["status"])
            return
        logger.warning("task %s ended without its callback going out; sending it now", task_id)
        outcome = Outcome(TaskStatus(record["status"]), record.get("data"), record.get("error"))
        self._deliver(task_id, record, outcome, None)

    def _infer(self, task_id: str, record: Mapping[str, Any]) -> Outcome:
        try:
            image = load_image(self.storage, record)
            result = self.pipelines[record["taskType"]].predict(image)
        except ImageMissing:
            logger.error("task %s: image not found", task_id)
            return Outcome.failure(ErrorCode.IMAGE_NOT_FOUND, "Image file not found")
        except SoftTimeLimitExceeded:
            logger.error("task %s timed out", task_id)
            return TIMED_OUT
        except Exception:
            logger.exception("task %s: inference failed", task_id)
            return Outcome.failure(ErrorCode.INFERENCE_FAILED, "AI inference failed")
        return Outcome(TaskStatus.SUCCEEDED, data=result)

    def _deliver(self, task_id: str, record: Mapping[str, Any], outcome: Outcome, started: float | None) -> None:
        """One callback attempt with the outcome; its result goes into the record."""
        status = outcome.status
        payload = {
            "taskId": task_id,
            "taskType": record.get("taskType"),
            "status": status,
            "data": outcome.data,
            "error": outcome.error,
        }
        try:
            attempt = self.callbacks.deliver(record["callbackUrl"], payload)
        except SoftTimeLimitExceeded:
            attempt = DeliveryAttempt(False, error="the task's time limit ran out during the callback")
        previous = int((record.get("callback") or {}).get("attempts", 0))
        callback_state = {
            "status": CallbackStatus.DELIVERED if attempt.delivered else CallbackStatus.FAILED,
            "attempts": previous + 1,
            "lastAttemptAt": utc_now(),
            "lastStatusCode": attempt.status_code,
            "lastError": attempt.error,
        }
        self.persistence.update_task(task_id, {"callback": callback_state}, unless_ended=False)
        took = f" in {(time.perf_counter() - started) * 1000:.1f} ms" if started is not None else ""
        if attempt.delivered:
            logger.info("task %s %s%s; callback delivered (HTTP %s)", task_id, status, took, attempt.status_code)
        else:
            logger.error("task %s %s%s but its callback failed: %s", task_id, status, took, attempt.error)
