"""POST /api/v1/batch: items accepted or rejected one by one, each as a single request would be."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support.images import image_bytes, jpeg_bytes, sample_dicom_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until

MAX_BATCH = 4


@pytest.fixture(scope="module")
def batch_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__LIMITS__MAX_BATCH=str(MAX_BATCH),
        XRAY__LIMITS__MAX_UPLOAD_MB="1",
    )
    stack.start_all()
    yield stack
    stack.stop()


def post_batch(stack: Stack, items: list[dict[str, Any]] | str, images: list[tuple[str, bytes]]) -> httpx.Response:
    tasks = items if isinstance(items, str) else json.dumps(items)
    files = [("image", (name, data, "application/octet-stream")) for name, data in images]
    return httpx.post(f"{stack.base_url}/api/v1/batch", data={"tasks": tasks}, files=files, timeout=30)


def item(callback_url: str, image: str, task_type: str = "pano", task_id: str | None = None) -> dict[str, Any]:
    return {"taskId": task_id or str(uuid.uuid4()), "taskType": task_type, "callbackUrl": callback_url, "image": image}


def test_every_item_is_accepted_and_completes(batch_stack: Stack, receiver: CallbackReceiver) -> None:
    items = [item(receiver.url(), "a.jpg"), item(receiver.url(), "b.dcm", "ceph"), item(receiver.url(), "c.png")]
    images = [("a.jpg", jpeg_bytes()), ("b.dcm", sample_dicom_bytes()), ("c.png", image_bytes("PNG"))]
    answer = post_batch(batch_stack, items, images)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (3, 0)
    assert [result["taskId"] for result in body["items"]] == [i["taskId"] for i in items]
    for sent in items:
        payload = receiver.wait_for(sent["taskId"])[0].json
        assert (payload["status"], payload["taskType"]) == ("succeeded", sent["taskType"])


def test_bad_items_are_rejected_alone_and_leave_nothing_behind(batch_stack: Stack, receiver: CallbackReceiver) -> None:
    taken = batch_stack.submit(receiver.url())
    receiver.wait_for(taken)
    # Its image is deleted just after its callback is owed: wait, so storage holds only what follows.
    wait_until(lambda: not (batch_stack.upload_dir / batch_stack.record(taken)["imageKey"]).exists())
    good = item(receiver.url(), "good.jpg")
    items = [
        good,
        item(receiver.url(), "bad-url.jpg") | {"callbackUrl": "ftp://example.com/cb"},
        item(receiver.url(), "taken.jpg", task_id=taken),
        item(receiver.url(), "missing.jpg"),
    ]
    images = [
        ("good.jpg", jpeg_bytes()),
        ("bad-url.jpg", jpeg_bytes()),
        ("taken.jpg", jpeg_bytes()),
        ("unused.jpg", jpeg_bytes()),
    ]
    files_before = batch_stack.stored_files()
    answer = post_batch(batch_stack, items, images)
    assert answer.status_code == 202
    results = answer.json()["items"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    assert [r["code"] for r in results] == [None, 10001, 10002, 10001]
    assert "missing.jpg" in results[3]["message"]
    assert receiver.wait_for(good["taskId"])[0].json["status"] == "succeeded"
    # Neither the rejected items' images nor the unused one stay in storage, nor do records. (The
    # good one's goes just after its callback is owed, so the callback may arrive first.)
    wait_until(lambda: batch_stack.stored_files() == files_before)
    for rejected in (items[1], items[3]):
        assert batch_stack.record(rejected["taskId"]) == {}


def test_a_hostile_image_rejects_only_its_item(batch_stack: Stack, receiver: CallbackReceiver) -> None:
    items = [item(receiver.url(), "fine.jpg"), item(receiver.url(), "cut.jpg")]
    answer = post_batch(batch_stack, items, [("fine.jpg", jpeg_bytes()), ("cut.jpg", jpeg_bytes((600, 400))[:3000])])
    results = answer.json()["items"]
    assert [(r["status"], r["code"]) for r in results] == [("accepted", None), ("rejected", 10003)]


def test_when_nothing_is_accepted_the_answer_is_400_with_the_same_body(batch_stack: Stack) -> None:
    items = [item("ftp://example.com/cb", "a.jpg")]
    files_before = batch_stack.stored_files()
    answer = post_batch(batch_stack, items, [("a.jpg", jpeg_bytes())])
    assert answer.status_code == 400
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["items"][0]["code"]) == (0, 1, 10001)
    assert batch_stack.stored_files() == files_before


@pytest.mark.parametrize(
    ("tasks", "complaint"),
    [
        ("not json", "not valid JSON"),
        ('{"taskId": "x"}', "JSON list of objects"),
        ("[]", "holds no task"),
    ],
)
def test_a_malformed_tasks_field_refuses_the_whole_request(batch_stack: Stack, tasks: str, complaint: str) -> None:
    files_before = batch_stack.stored_files()
    answer = post_batch(batch_stack, tasks, [("a.jpg", jpeg_bytes())])
    assert answer.status_code == 400
    assert answer.json()["code"] == 10001 and complaint in answer.json()["detail"]
    assert batch_stack.stored_files() == files_before


def test_the_batch_size_and_image_limits_hold(batch_stack: Stack, receiver: CallbackReceiver) -> None:
    too_many = [item(receiver.url(), f"{n}.jpg") for n in range(MAX_BATCH + 1)]
    answer = post_batch(batch_stack, too_many[:MAX_BATCH], [(f"{n}.jpg", jpeg_bytes()) for n in range(MAX_BATCH + 1)])
    assert answer.status_code == 400 and f"at most {MAX_BATCH} images" in answer.json()["detail"]
    answer = post_batch(batch_stack, too_many, [("0.jpg", jpeg_bytes())])
    assert answer.status_code == 400 and f"at most {MAX_BATCH} tasks" in answer.json()["detail"]
    big = jpeg_bytes() + b"\0" * (1024 * 1024)
    answer = post_batch(batch_stack, [item(receiver.url(), "big.jpg")], [("big.jpg", big)])
    assert answer.status_code == 413 and answer.json()["code"] == 10004
