"""End to end through real processes: API → Redis → Celery worker → callback receiver."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.core.persistence import TaskPersistence
from server.core.storage import LocalStorage
from server.settings import get_settings
from tests.support.images import image_bytes, jpeg_bytes, sample_dicom_bytes
from tests.support.receiver import CallbackReceiver, Reply
from tests.support.stack import Stack, wait_until


@pytest.fixture
def persistence(stack: Stack) -> Iterator[TaskPersistence]:
    with TaskPersistence(get_settings()) as store:
        yield store


def test_seed_step_7_worker_runs_a_task_enqueued_by_hand(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence
) -> None:
    from server.tasks import analyze_task

    storage = LocalStorage(get_settings().api.upload_dir)
    key = storage.new_key(".jpg")
    staged = storage.stage(key)
    staged.write(jpeg_bytes())
    staged.commit()
    task_id = str(uuid.uuid4())
    metadata = {
        "taskId": task_id,
        "taskType": "pano",
        "imageKey": key,
        "callbackUrl": receiver.url(),
        "status": "queued",
        "createdAt": "2026-01-01T00:00:00Z",
    }
    assert persistence.save_task(task_id, metadata)
    analyze_task.apply_async(args=(task_id,), queue="pano")
    (callback,) = receiver.wait_for(task_id)
    assert callback.json["data"]["teeth"][0] == {"id": 11, "status": "healthy", "confidence": 0.95}
    wait_until(lambda: not storage.exists(key))


def test_seed_step_7_exactly_as_written_in_the_design_document(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence
) -> None:
    from server.tasks import analyze_task

    image_path = stack.upload_dir / "test.jpg"  # the seed's API saved uploads there
    # The design document writes b"fake image data"; the worker decodes images now, so that file
    # would end with 12003 (see test_model_pipelines): a real JPEG takes its place.
    image_path.write_bytes(jpeg_bytes())
    task_id = str(uuid.uuid4())
    metadata = {
        "taskId": task_id,
        "taskType": "pano",
        "imagePath": str(image_path),
        "callbackUrl": receiver.url(),
        "createdAt": time.time(),
    }
    assert persistence.save_task(task_id, metadata)
    result = analyze_task.delay(task_id)
    assert result.id
    payload = receiver.wait_for(task_id)[0].json
    assert payload["error"] is None
    assert payload["data"]["teeth"][2] == {"id": 21, "status": "caries", "confidence": 0.87}
    wait_until(lambda: not image_path.exists())


def test_a_record_naming_a_file_outside_the_store_neither_reads_nor_deletes_it(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence, tmp_path: Path
) -> None:
    from server.tasks import analyze_task

    outside = tmp_path / "precious.jpg"
    outside.write_bytes(jpeg_bytes())
    task_id = str(uuid.uuid4())
    metadata = {"taskId": task_id, "taskType": "pano", "imagePath": str(outside), "callbackUrl": receiver.url()}
    assert persistence.save_task(task_id, metadata)
    analyze_task.delay(task_id)
    assert receiver.wait_for(task_id)[0].json["error"]["code"] == 12002
    # The worker's attempt to delete it comes after the callback is owed: wait until it was refused.
    wait_until(lambda: f"could not delete image of task {task_id}" in stack.log("worker"))
    assert outside.read_bytes() == jpeg_bytes()


def test_seed_step_8_full_flow_records_the_outcome_and_deletes_the_image(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence
) -> None:
    task_id = stack.submit(receiver.url())
    (callback,) = receiver.wait_for(task_id)
    payload = callback.json
    assert payload["taskId"] == task_id
    assert payload["error"] is None
    assert payload["status"] == "succeeded"
    assert payload["data"]["model"]["name"] == "mock"
    assert payload["data"]["diseases"] == [
        {"type": "caries", "location": "tooth_21", "severity": "mild", "confidence": 0.87}
    ]
    wait_until(lambda: (persistence.get_task(task_id) or {}).get("callback", {}).get("status") == "delivered")
    record = persistence.get_task(task_id)
    assert record is not None
    assert record["status"] == "succeeded"
    assert record["data"] == payload["data"]
    assert record["attempts"] == 1
    assert record["createdAt"] <= record["startedAt"] <= record["completedAt"]
    assert record["callback"]["lastStatusCode"] == 200
    # Deleted just after the callback is owed, so possibly after it arrived.
    wait_until(lambda: not (stack.upload_dir / record["imageKey"]).exists())


def test_ceph_task_gets_landmarks_and_measurements(stack: Stack, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    response = stack.post_analyze(
        {"taskId": task_id, "taskType": "ceph", "callbackUrl": receiver.url()},
        ("ceph.dcm", sample_dicom_bytes()),
    )
    assert response.status_code == 202
    data = receiver.wait_for(task_id)[0].json["data"]
    assert data["measurements"] == {"SNA": 82.5, "SNB": 78.3, "ANB": 4.2}
    assert [landmark["name"] for landmark in data["landmarks"]] == ["Sella", "Nasion"]
    assert data["image"]["format"] == "dicom"
    assert data["image"]["sizeBytes"] == len(sample_dicom_bytes())
    assert (data["image"]["width"], data["image"]["height"]) == (128, 128)  # CT_small's size
    assert data["model"] == {"name": "mock", "version": "1", "backend": "mock"}


def test_missing_image_ends_with_error_callback_12002(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence
) -> None:
    from server.tasks import analyze_task

    task_id = str(uuid.uuid4())
    metadata = {
        "taskId": task_id,
        "taskType": "pano",
        "imageKey": LocalStorage.new_key(".jpg"),  # never written
        "callbackUrl": receiver.url(),
        "status": "queued",
    }
    persistence.save_task(task_id, metadata)
    analyze_task.apply_async(args=(task_id,), queue="pano")
    payload = receiver.wait_for(task_id)[0].json
    assert payload["data"] is None
    assert payload["error"] == {"code": 12002, "message": "Image file not found"}
    wait_until(lambda: (persistence.get_task(task_id) or {}).get("status") == "failed")


def test_callback_failure_is_logged_and_recorded(
    stack: Stack, receiver: CallbackReceiver, persistence: TaskPersistence
) -> None:
    receiver.replies["/broken"] = Reply(500)
    task_id = stack.submit(receiver.url("/broken"))
    receiver.wait_for(task_id)

    def callback_state() -> dict[str, Any]:
        state: dict[str, Any] = (persistence.get_task(task_id) or {}).get("callback", {})
        return state

    wait_until(lambda: callback_state().get("status") == "failed")
    assert callback_state()["lastStatusCode"] == 500
    assert callback_state()["attempts"] == 3  # the first try and the schedule's two retries
    assert len(receiver.for_task(task_id)) == 3
    assert (persistence.get_task(task_id) or {})["status"] == "succeeded"  # the result itself is kept
    logged = re.compile(rf"ERROR .* task {task_id}: callback failed for good \(retries exhausted after 3 failures\)")
    wait_until(lambda: logged.search(stack.log("delivery")) is not None)


def test_unknown_task_id_is_dropped_and_the_worker_keeps_going(stack: Stack, receiver: CallbackReceiver) -> None:
    from server.tasks import analyze_task

    ghost = str(uuid.uuid4())
    analyze_task.apply_async(args=(ghost,), queue="pano")
    task_id = stack.submit(receiver.url())
    receiver.wait_for(task_id)
    wait_until(lambda: f"task {ghost} has no record" in stack.log("worker"))
    assert receiver.for_task(ghost) == []


async def _race(base_url: str, task_id: str, callback_url: str, count: int) -> list[int]:
    image = image_bytes("PNG")
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one() -> int:
            response = await client.post(
                "/api/v1/analyze",
                data={"taskId": task_id, "taskType": "pano", "callbackUrl": callback_url},
                files={"image": ("x.png", image, "image/png")},
            )
            return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_fifty_concurrent_requests_with_one_task_id_accept_exactly_one(
    stack: Stack, receiver: CallbackReceiver
) -> None:
    task_id = str(uuid.uuid4())
    statuses = asyncio.run(_race(stack.base_url, task_id, receiver.url(), 50))
    assert statuses.count(202) == 1
    assert statuses.count(409) == 49
    receiver.wait_for(task_id)
    time.sleep(0.5)  # room for a wrongly queued duplicate to call back
    assert len(receiver.for_task(task_id)) == 1
