"""Cancel, callback retries and replay, and delivery that survives its own death, with real processes."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver, Reply
from tests.support.stack import Stack, wait_until


@pytest.fixture(scope="module")
def one_slot(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One pool process and 1.5 s of inference, so a second task waits in the queue."""
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__PIPELINES__MOCK_DELAY_S="1.5",
        XRAY__WORKER__CONCURRENCY="1",
        XRAY__CALLBACK__RETRY_SCHEDULE="[0.2, 0.2]",
        XRAY__CALLBACK__TIMEOUT="1",
    )
    stack.start_all()
    yield stack
    stack.stop()


def post(stack: Stack, path: str) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", timeout=10)


def test_a_queued_task_canceled_never_runs(one_slot: Stack, receiver: CallbackReceiver) -> None:
    running = one_slot.submit(receiver.url())
    queued = one_slot.submit(receiver.url())
    wait_until(lambda: one_slot.view(running)["status"] == "processing")
    with one_slot.redis() as client:
        image = one_slot.upload_dir / client.hget(f"xray-test:task:{queued}", "imageKey").strip('"')
    assert image.exists()
    response = post(one_slot, f"/api/v1/task/{queued}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert response.json()["error"] == {"code": 12005, "message": "Task canceled"}
    assert receiver.wait_for(queued)[0].json["error"]["code"] == 12005
    receiver.wait_for(running)  # the slot frees up; the canceled task must still not start
    wait_until(lambda: f"task {queued} already canceled" in one_slot.log("worker"))
    assert one_slot.view(queued)["startedAt"] is None
    assert not image.exists()


def test_a_running_task_canceled_has_its_result_discarded(one_slot: Stack, receiver: CallbackReceiver) -> None:
    task_id = one_slot.submit(receiver.url())
    wait_until(lambda: one_slot.view(task_id)["status"] == "processing")
    assert post(one_slot, f"/api/v1/task/{task_id}/cancel").status_code == 200
    wait_until(lambda: f"task {task_id} was ended elsewhere; discarding" in one_slot.log("worker"))
    (callback,) = receiver.wait_for(task_id)
    assert callback.json["status"] == "canceled"
    final = one_slot.view(task_id)
    assert final["status"] == "canceled" and final["data"] is None


def test_cancel_of_an_ended_or_unknown_task(one_slot: Stack, receiver: CallbackReceiver) -> None:
    task_id = one_slot.submit(receiver.url())
    receiver.wait_for(task_id)
    response = post(one_slot, f"/api/v1/task/{task_id}/cancel")
    assert (response.status_code, response.json()["code"]) == (409, 10009)
    response = post(one_slot, f"/api/v1/task/{uuid.uuid4()}/cancel")
    assert (response.status_code, response.json()["code"]) == (404, 10006)


def test_failed_attempts_are_retried_with_the_same_body(stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/flaky"] = [Reply(500), Reply(302), Reply(200)]
    task_id = str(uuid.uuid4())
    response = stack.post_analyze(
        {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url("/flaky")}, ("x.jpg", jpeg_bytes())
    )
    assert response.status_code == 202
    attempts = receiver.wait_for(task_id, count=3)
    assert len({a.body for a in attempts}) == 1
    wait_until(lambda: stack.view(task_id)["callback"]["status"] == "delivered")
    assert stack.view(task_id)["callback"]["attempts"] == 3


def test_410_gone_stops_retrying(stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/gone"] = Reply(410)
    task_id = str(uuid.uuid4())
    stack.post_analyze(
        {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url("/gone")}, ("x.jpg", jpeg_bytes())
    )
    wait_until(lambda: stack.view(task_id)["callback"]["status"] == "failed")
    assert stack.view(task_id)["callback"]["attempts"] == 1
    assert len(receiver.for_task(task_id)) == 1


def test_retry_after_is_honoured(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__CALLBACK__RETRY_SCHEDULE="[600]")
    stack.start_all()
    try:
        receiver.replies["/busy"] = [Reply(503, headers={"Retry-After": "1"}), Reply(200)]
        task_id = stack.submit(receiver.url("/busy"))
        wait_until(lambda: stack.view(task_id)["callback"]["nextAttemptAt"] is not None)
        # The schedule alone would wait ten minutes; the receiver asked for one second.
        receiver.wait_for(task_id, count=2, timeout_s=20)
        wait_until(lambda: stack.view(task_id)["callback"]["status"] == "delivered")
    finally:
        stack.stop()


def test_replay_after_the_schedule_is_exhausted(stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/broken"] = Reply(500)
    task_id = stack.submit(receiver.url("/broken"))
    wait_until(lambda: stack.view(task_id)["callback"]["status"] == "failed")
    receiver.replies["/broken"] = Reply(200)
    response = post(stack, f"/api/v1/task/{task_id}/callback/retry")
    assert response.status_code == 202, response.text
    wait_until(lambda: stack.view(task_id)["callback"]["status"] == "delivered")
    assert stack.view(task_id)["callback"]["attempts"] == 4
    assert post(stack, f"/api/v1/task/{uuid.uuid4()}/callback/retry").status_code == 404


def test_replay_of_an_unfinished_task_is_refused(one_slot: Stack, receiver: CallbackReceiver) -> None:
    task_id = one_slot.submit(receiver.url())
    response = post(one_slot, f"/api/v1/task/{task_id}/callback/retry")
    assert (response.status_code, response.json()["code"]) == (400, 10001)
    receiver.wait_for(task_id)


def test_a_slow_receiver_does_not_hold_inference_slots(stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/slow"] = Reply(200, delay_s=4)
    task_ids = [stack.submit(receiver.url("/slow")) for _ in range(6)]
    # Two pool processes finish all six before the receiver has answered a single callback
    # (had they sent the callbacks themselves, each slot would be held 4 s per task).
    wait_until(lambda: all(stack.view(t)["status"] == "succeeded" for t in task_ids), timeout_s=10)
    assert receiver.received_on("/slow") == []
    for task_id in task_ids:
        receiver.wait_for(task_id)


def test_owed_callbacks_survive_the_delivery_service(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__CALLBACK__TIMEOUT="1")
    stack.start_api()
    stack.start_worker()
    try:
        # No delivery process yet: the callbacks wait in the outbox.
        first = stack.submit(receiver.url())
        wait_until(lambda: stack.view(first)["status"] == "succeeded")
        stack.start_delivery()
        receiver.wait_for(first)
        # A delivery process killed in the middle of an attempt: its claim falls due again.
        receiver.replies["/hang"] = [Reply(200, delay_s=30), Reply(200)]
        second = stack.submit(receiver.url("/hang"))
        wait_until(lambda: any(second.encode() in body for body in receiver.arrived))
        stack.stop("delivery", sig=signal.SIGKILL)
        stack.start_delivery("delivery-2")
        receiver.wait_for(second, timeout_s=30)
        wait_until(lambda: stack.view(second)["callback"]["status"] == "delivered")
    finally:
        stack.stop()
