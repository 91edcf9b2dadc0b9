"""What the worker does with one task id: load, infer, record the outcome, clean up.

Plain class, no Celery in its interface beyond the time-limit exception, so tests and other
runners can drive it directly. Every run may be a redelivery of a message whose first run died:
the record's guarded updates make sure only one run ends the task, and ending it queues its
callback in the same step, so an ended task always gets its callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipelines.base import Pipeline
from pipelines.decode import ImageDecodeError, decode_image
from pipelines.image import DecodedImage
from server.core.clock import utc_now
from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.status import TIMED_OUT, Outcome, TaskStatus
from server.core.storage import ImageMissing, ImageStorage, discard_image, seed_image_path
from server.errors import ErrorCode
from server.metrics import TASK_DURATION, TASKS

logger = logging.getLogger(__name__)


class PipelineUnavailable(Exception):
    """This process has no loaded pipeline for the task's type: another worker should run it."""


class ImageStoreUnavailable(Exception):
    """The image store could not be read (not: the image is missing); the task should run later."""


def read_image(storage: ImageStorage, key: str) -> DecodedImage:
    """The image stored under `key`, decoded; `ImageMissing`, `ImageStoreUnavailable` or `ImageDecodeError`."""
    try:
        data = storage.read_bytes(key)
    except OSError as exc:  # the store is down or refusing: not the client's fault, nor final
        raise ImageStoreUnavailable(str(exc)) from exc
    return decode_image(data, key[key.rindex(".") :].lower())


def load_image(storage: ImageStorage, record: Mapping[str, Any]) -> DecodedImage:
    """The task's image, decoded; `ImageMissing` when it is gone, `ImageDecodeError` when unusable."""
    if "imageKey" in record:
        return read_image(storage, record["imageKey"])
    path = seed_image_path(storage, record)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ImageMissing(str(path)) from None
    return decode_image(data, path.suffix.lower())


@dataclass(frozen=True)
class Prefetched:
    """An image read before its task's record was: decoded, or the exception reading it raised."""

    key: str
    outcome: DecodedImage | Exception

    @classmethod
    def read(cls, storage: ImageStorage, key: str) -> Prefetched:
        try:
            return cls(key, read_image(storage, key))
        except Exception as exc:  # kept for the task's own error handling, once it is known to run
            return cls(key, exc)

    def image_for(self, record: Mapping[str, Any]) -> DecodedImage | None:
        """The image if it is the record's (raising what reading it raised); None if it is not."""
        if record.get("imageKey") != self.key:
            return None
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class TaskProcessor:
    def __init__(
        self,
        persistence: TaskPersistence,
        storage: ImageStorage,
        pipelines: Mapping[str, Pipeline],
        *,
        max_attempts: int,
        keep_images: bool = False,
    ) -> None:
        self.persistence = persistence
        self.outbox = CallbackOutbox(persistence)
        self.storage = storage
        self.pipelines = pipelines
        self.max_attempts = max_attempts
        self.keep_images = keep_images

    def process(
        self,
        task_id: str,
        owner: str = "",
        task_type: str | None = None,
        image_key: str | None = None,
        *,
        prefetch: bool = False,
    ) -> TaskStatus | None:
        """Run the task to its end; returns the final status, or None when there is no such task.

        `PipelineUnavailable` when this process could not load the pipeline of `task_type` (the
        queue the message came from): the task is left untouched for a worker that can run it.
        `image_key` (from the message): the image to delete when the record is gone, having
        expired while the task waited in the queue; with `prefetch`, also read and decoded while
        Redis starts the task, instead of after. Only for a message that has not run before: a
        decoder that crashes the process would otherwise do so before the attempt limit is read.

        The callback is not sent here: ending the task puts it in the outbox, which the delivery
        service empties, so a slow receiver never holds an inference slot. Redis errors
        propagate: the caller puts the message back rather than lose the task.
        """
        started = time.perf_counter()
        if task_type is not None and task_type not in self.pipelines:
            raise PipelineUnavailable(task_type)
        # `owner`: the worker running it, whose heartbeat tells whether the task is still alive.
        started_fields = {"status": TaskStatus.PROCESSING, "startedAt": utc_now(), "owner": owner}
        prefetched: Prefetched | None = None
        if image_key is None or not prefetch:
            record = self.persistence.start_attempt(task_id, started_fields)
        else:
            # The message names the image: read it while Redis starts the task, not after.
            record, prefetched = self.persistence.start_attempt_during(
                task_id, started_fields, lambda: Prefetched.read(self.storage, image_key)
            )
        if record is None:
            logger.warning("task %s has no record (expired or never accepted); dropping it", task_id)
            if image_key is not None and not self.keep_images:
                discard_image(self.storage, {"taskId": task_id, "imageKey": image_key})
            return None
        status = TaskStatus(record["status"])
        if status.is_terminal():
            logger.info("task %s already %s; not running it again", task_id, status)
            return status
        attempt = int(record["attempts"])
        logger.info("task %s processing (attempt %d)", task_id, attempt)
        if attempt > self.max_attempts:
            outcome = Outcome.failure(
                ErrorCode.INFERENCE_FAILED, f"AI inference failed: gave up after {self.max_attempts} attempts"
            )
        else:
            outcome = self._infer(task_id, record, prefetched)
        ended = self.outbox.end_task(task_id, outcome)
        if not self.keep_images:
            discard_image(self.storage, record)
        took_ms = (time.perf_counter() - started) * 1000
        if not ended:
            # Canceled meanwhile, or another run of the same message got there first.
            logger.info("task %s was ended elsewhere; discarding this result (%.1f ms)", task_id, took_ms)
            return None
        logger.info("task %s %s in %.1f ms", task_id, outcome.status, took_ms)
        task_type = str(record.get("taskType"))
        TASKS.labels(task_type, outcome.status).inc()
        TASK_DURATION.labels(task_type, outcome.status).observe(took_ms / 1000)
        return outcome.status

    def _infer(self, task_id: str, record: Mapping[str, Any], prefetched: Prefetched | None) -> Outcome:
        try:
            image = prefetched.image_for(record) if prefetched is not None else None
            if image is None:
                image = load_image(self.storage, record)
            result = self.pipelines[record["taskType"]].predict(image)
        except ImageStoreUnavailable:
            raise  # the caller hands the message back; the task runs when the store is back
        except ImageMissing:
            logger.error("task %s: image not found", task_id)
            return Outcome.failure(ErrorCode.IMAGE_NOT_FOUND, "Image file not found")
        except ImageDecodeError as exc:
            logger.warning("task %s: image cannot be decoded: %s", task_id, exc)
            return Outcome.failure(ErrorCode.IMAGE_UNDECODABLE, f"Image cannot be decoded: {exc}")
        except SoftTimeLimitExceeded:
            logger.error("task %s timed out", task_id)
            return TIMED_OUT
        except Exception:
            logger.exception("task %s: inference failed", task_id)
            return Outcome.failure(ErrorCode.INFERENCE_FAILED, "AI inference failed")
        return Outcome(TaskStatus.SUCCEEDED, data=result)
