"""GET /api/v1/task/{taskId}: state, times, result and callback, then 404 once expired."""

from __future__ import annotations

import uuid

import httpx
import pytest

from server.core.outbox import owed_keys
from server.embedded_redis import EmbeddedRedis
from tests.conftest import running_api
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver, Reply
from tests.support.stack import KEY_PREFIX, Stack, wait_until


def _get(stack: Stack, task_id: str) -> httpx.Response:
    return httpx.get(f"{stack.base_url}/api/v1/task/{task_id}", timeout=10)


def test_a_finished_task_shows_its_result_and_delivered_callback(stack: Stack, receiver: CallbackReceiver) -> None:
    task_id = stack.submit(receiver.url())
    callback = receiver.wait_for(task_id)[0].json
    wait_until(lambda: _get(stack, task_id).json()["callback"]["status"] == "delivered")
    view = _get(stack, task_id.upper()).json()
    assert view["taskId"] == task_id
    assert view["taskType"] == "pano"
    assert view["status"] == "succeeded"
    assert view["data"] == callback["data"]
    assert view["error"] is None
    assert view["createdAt"] <= view["startedAt"] <= view["completedAt"]
    assert view["createdAt"].endswith("Z")
    assert view["callback"]["attempts"] == 1
    assert view["callback"]["lastStatusCode"] == 200
    assert "callbackUrl" not in view and "imageKey" not in view


def test_the_result_stays_readable_when_the_callback_failed(stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/down"] = Reply(503)
    task_id = stack.submit(receiver.url("/down"))
    receiver.wait_for(task_id)
    wait_until(lambda: _get(stack, task_id).json()["callback"]["status"] == "failed")
    view = _get(stack, task_id).json()
    assert view["status"] == "succeeded"
    assert view["data"]["model"]["name"] == "mock"
    assert view["callback"]["lastStatusCode"] == 503


def test_a_queued_task_shows_queued(api_only: Stack) -> None:
    task_id = str(uuid.uuid4())
    response = api_only.post_analyze(
        {"taskId": task_id, "taskType": "ceph", "callbackUrl": "http://127.0.0.1:9/cb"}, ("x.jpg", jpeg_bytes())
    )
    assert response.status_code == 202
    view = _get(api_only, task_id).json()
    assert view["status"] == "queued"
    assert view["startedAt"] is None and view["completedAt"] is None and view["data"] is None
    assert view["callback"] == {
        "status": "pending",
        "attempts": 0,
        "lastAttemptAt": None,
        "lastStatusCode": None,
        "lastError": None,
        "nextAttemptAt": None,
    }


def test_unknown_expired_and_malformed_ids_are_404_10006(api_only: Stack) -> None:
    for task_id in (str(uuid.uuid4()), "not-a-task", str(uuid.uuid1())):
        response = _get(api_only, task_id)
        assert response.status_code == 404
        assert response.json()["code"] == 10006
    # An expired record is gone the same way: let one expire.
    task_id = str(uuid.uuid4())
    with api_only.redis() as client:
        key = f"xray-test:task:{task_id}"
        client.hset(key, mapping={"taskId": f'"{task_id}"', "taskType": '"pano"', "status": '"succeeded"'})
        assert _get(api_only, task_id).status_code == 200
        client.pexpire(key, 1)
    wait_until(lambda: _get(api_only, task_id).status_code == 404)


def test_a_task_that_expired_in_the_queue_is_dropped_with_its_image(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    """No worker for longer than task.result_ttl: the record expires; the worker that finally takes
    the message drops the task, owes no callback, and deletes the image the message names."""
    with running_api(redis_server, tmp_path_factory, XRAY__TASK__RESULT_TTL="1") as stack:
        task_id = stack.submit(receiver.url())
        assert len(stack.stored_files()) == 1
        wait_until(lambda: stack.record(task_id) == {}, timeout_s=10)
        assert stack.queued_messages()["pano"] == 1
        stack.start_worker()
        wait_until(lambda: stack.queued_messages()["pano"] == 0, timeout_s=30)
        wait_until(lambda: stack.stored_files() == [], timeout_s=10)
        assert f"task {task_id} has no record" in stack.log("worker")
        with stack.redis() as client:
            assert client.exists(*owed_keys(KEY_PREFIX)) == 0  # nothing for a delivery service to send
