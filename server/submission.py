"""Accepting an analyze request: validate, store the image, create and queue the task — or undo all."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from pydantic import ValidationError
from starlette.requests import Request

from server.auth import OPEN_TENANT, task_ref
from server.core.clock import utc_now
from server.core.netpolicy import CallbackPolicy, CallbackRefused, ResolutionUnavailable
from server.core.status import TaskStatus
from server.core.storage import ImageStorage
from server.errors import (
    CallbackNotAllowed,
    DependencyUnavailable,
    RequestInvalid,
    StorageUnavailable,
    TaskAlreadyExists,
)
from server.schemas import AnalyzeRequest, AnalyzeResponse
from server.task_queue import TaskQueue
from server.upload import IMAGE_FIELD, AnalyzeFormReader, UploadedImage

logger = logging.getLogger(__name__)

TEXT_FIELDS = ("taskId", "taskType", "callbackUrl")


def validated_fields(fields: Mapping[str, str]) -> AnalyzeRequest:
    missing = [name for name in TEXT_FIELDS if name not in fields]
    if missing:
        raise RequestInvalid(f"missing form field(s): {', '.join(missing)}")
    try:
        return AnalyzeRequest.model_validate({name: fields[name] for name in TEXT_FIELDS})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise RequestInvalid(problems) from None


class _EarlyValidation:
    """Rejects bad fields before the image is stored, when the client sent them first, and keeps
    the result: a field repeated after the image cannot change it (the first value counts)."""

    def __init__(self) -> None:
        self.request: AnalyzeRequest | None = None

    def __call__(self, fields: Mapping[str, str]) -> None:
        if all(name in fields for name in TEXT_FIELDS):
            self.request = validated_fields(fields)


class Submitter:
    def __init__(
        self,
        queue: TaskQueue,
        storage: ImageStorage,
        max_image_bytes: int,
        policy: CallbackPolicy,
    ) -> None:
        self.policy = policy
        self.queue = queue
        self.storage = storage
        self.max_image_bytes = max_image_bytes

    async def submit(self, request: Request, tenant: str = OPEN_TENANT) -> AnalyzeResponse:
        early = _EarlyValidation()
        form = await AnalyzeFormReader(self.storage, self.max_image_bytes, early).read(request)
        image = form.image
        try:
            if image is None:
                missing = [name for name in TEXT_FIELDS if name not in form.fields]
                raise RequestInvalid(f"missing form field(s): {', '.join([*missing, IMAGE_FIELD])}")
            task = early.request or validated_fields(form.fields)
        except BaseException:
            if image is not None:
                await anyio.to_thread.run_sync(image.discard)
            raise
        # One hop to a thread for all the blocking steps: file, Redis and broker.
        await anyio.to_thread.run_sync(self.accept, task, image, tenant)
        return AnalyzeResponse(taskId=task.taskId)

    def accept(self, task: AnalyzeRequest, image: UploadedImage, tenant: str) -> None:
        """Store, create and queue one validated task (blocking); undo it all and raise on any failure."""
        ref = task_ref(tenant, task.taskId)
        try:
            try:
                self.policy.check_url(task.callbackUrl)  # resolves the host: blocking, so here
            except CallbackRefused as exc:
                raise CallbackNotAllowed(str(exc)) from None
            except ResolutionUnavailable as exc:
                raise DependencyUnavailable(f"{exc}; retry later") from None
            try:
                image.commit()
            except OSError as exc:
                raise StorageUnavailable(exc) from exc
            record = {
                "taskId": task.taskId,
                "tenant": tenant,
                "taskType": task.taskType,
                "callbackUrl": task.callbackUrl,
                "imageKey": image.key,
                "status": TaskStatus.QUEUED,
                "createdAt": utc_now(),
                "attempts": 0,
            }
            if not self.queue.create(ref, record, task.taskType):
                raise TaskAlreadyExists(f"taskId {task.taskId} is already in use")
        except BaseException:
            image.discard()
            raise
        logger.info("task %s accepted (%s, %d bytes)", ref, task.taskType, image.size)
