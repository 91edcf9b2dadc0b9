"""`POST /api/v1/batch`: several analyze requests in one upload, each accepted or rejected on its own.

The form holds a `tasks` field — a JSON list of `{taskId, taskType, callbackUrl, image}`, where
`image` is the filename of one of the request's `image` parts — and the images. Every item goes
through exactly what a single analyze request does (the same validation, image checks, network
policy, claim and enqueue, each undone on failure), so an item is atomic and its neighbours do not
depend on it. Images no item names are discarded.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from server.auth import TenantDep
from server.errors import RequestInvalid, ServiceError
from server.schemas import INTERNAL_ERROR, UNAUTHORIZED, error_responses
from server.submission import Submitter, validated_fields
from server.upload import MAX_TEXT_FIELD_BYTES, AnalyzeFormReader, UploadedImage

logger = logging.getLogger(__name__)

TASKS_FIELD = "tasks"
ITEM_FIELDS = ("taskId", "taskType", "callbackUrl", "image")


class BatchItemResult(BaseModel):
    taskId: str | None = Field(description="The item's taskId as sent (lowercase when accepted)")
    status: Literal["accepted", "rejected"]
    code: int | None = Field(default=None, description="Error code of a rejected item (as in single requests)")
    message: str | None = Field(default=None, description="Why the item was rejected")


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    items: list[BatchItemResult] = Field(description="One result per item, in the order sent")


def parse_items(raw: str | None, max_items: int) -> list[dict[str, Any]]:
    """The `tasks` field: a JSON list of objects; anything else rejects the whole request."""
    if raw is None:
        raise RequestInvalid(f"missing form field {TASKS_FIELD!r} (a JSON list of tasks)")
    try:
        items = json.loads(raw)
    except ValueError:
        raise RequestInvalid(f"{TASKS_FIELD!r} is not valid JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise RequestInvalid(f"{TASKS_FIELD!r} must be a JSON list of objects")
    if not items:
        raise RequestInvalid(f"{TASKS_FIELD!r} holds no task")
    if len(items) > max_items:
        raise RequestInvalid(f"at most {max_items} tasks per batch (got {len(items)})")
    return items


class BatchSubmitter:
    def __init__(self, submitter: Submitter, max_items: int, max_body_bytes: int) -> None:
        self.submitter = submitter
        self.max_items = max_items
        self.max_body_bytes = max_body_bytes

    async def submit(self, request: Request, tenant: str) -> BatchResponse:
        reader = AnalyzeFormReader(
            self.submitter.storage,
            self.submitter.max_image_bytes,
            max_images=self.max_items,
            max_text_bytes=self.max_items * MAX_TEXT_FIELD_BYTES,
            body_limit=self.max_body_bytes,
        )
        form = await reader.read(request)
        try:
            items = parse_items(form.fields.get(TASKS_FIELD), self.max_items)
        except BaseException:
            await anyio.to_thread.run_sync(_discard_all, form.images)
            raise
        # One hop to a thread for every item's blocking steps, as for a single request.
        return await anyio.to_thread.run_sync(self._accept_all, items, form.images, tenant)

    def _accept_all(self, items: list[dict[str, Any]], images: list[UploadedImage], tenant: str) -> BatchResponse:
        by_name: dict[str, UploadedImage] = {}
        for image in images:
            by_name.setdefault(image.filename, image)  # a repeated filename: the first part counts
        used: set[str] = set()
        results = [self._accept_one(item, by_name, used, tenant) for item in items]
        # An image no item took (unnamed, or a second part under a name already taken) is not kept.
        _discard_all([image for image in images if image.filename not in used or by_name[image.filename] is not image])
        accepted = sum(result.status == "accepted" for result in results)
        logger.info("batch of %d: %d accepted, %d rejected", len(results), accepted, len(results) - accepted)
        return BatchResponse(accepted=accepted, rejected=len(results) - accepted, items=results)

    def _accept_one(
        self, item: dict[str, Any], images: dict[str, UploadedImage], used: set[str], tenant: str
    ) -> BatchItemResult:
        sent_id = item.get("taskId")
        shown_id = sent_id if isinstance(sent_id, str) else None
        try:
            unknown = sorted(set(item) - set(ITEM_FIELDS))
            if unknown:
                raise RequestInvalid(f"unknown item field(s): {', '.join(unknown)}")
            if not all(isinstance(item.get(name), str) for name in ITEM_FIELDS):
                raise RequestInvalid(f"every item needs string fields {', '.join(ITEM_FIELDS)}")
            task = validated_fields({name: item[name] for name in ITEM_FIELDS if name != "image"})
            filename: str = item["image"]
            image = images.get(filename)
            if image is None:
                raise RequestInvalid(f"no uploaded image named {filename!r}")
            if filename in used:
                raise RequestInvalid(f"image {filename!r} is already another item's")
            used.add(filename)
            self.submitter.accept(task, image, tenant)  # undoes its own steps when it fails
        except ServiceError as exc:
            return BatchItemResult(taskId=shown_id, status="rejected", code=exc.code, message=exc.detail or exc.message)
        return BatchItemResult(taskId=task.taskId, status="accepted")


def _discard_all(images: list[UploadedImage]) -> None:
    for image in images:
        image.discard()


router = APIRouter()


_BATCH_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "No item was accepted (a BatchResponse), or the form itself is unusable: no `tasks`, "
        "bad JSON, too many tasks or images, not multipart (an ErrorResponse, 10001)",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/BatchResponse"},
                        {"$ref": "#/components/schemas/ErrorResponse"},
                    ]
                }
            }
        },
    },
    **error_responses(
        {
            401: UNAUTHORIZED,
            413: "An image larger than limits.max_upload_mb or a request larger than limits.max_batch_mb (10004)",
            500: INTERNAL_ERROR,
            503: "Redis, the broker or the image store is unavailable (10007); retry after Retry-After seconds",
        }
    ),
}
# Hand-written, as for analyze: the route streams the body itself.
_BATCH_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [TASKS_FIELD, "image"],
                    "properties": {
                        TASKS_FIELD: {
                            "type": "string",
                            "description": "JSON list of {taskId, taskType, callbackUrl, image}; `image` is the "
                            "filename of one of the image parts",
                        },
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The images, one part each, told apart by filename",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/api/v1/batch",
    status_code=202,
    response_model=BatchResponse,
    responses=_BATCH_ANSWERS,
    openapi_extra=_BATCH_FORM,
)
async def submit_batch(request: Request, tenant: TenantDep) -> JSONResponse:
    """Queue several X-rays at once: each item is accepted or rejected on its own."""
    batch: BatchSubmitter = request.app.state.batch
    result = await batch.submit(request, tenant)
    return JSONResponse(result.model_dump(), status_code=202 if result.accepted else 400)
