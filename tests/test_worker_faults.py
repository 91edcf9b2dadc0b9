"""Time limits and pool processes killed mid-task, with real worker processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import started_stack
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until


@pytest.fixture(scope="module")
def slow_limit(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = started_stack(
        redis_server,
        tmp_path_factory,
        XRAY__PIPELINES__MOCK_DELAY_S="3",
        XRAY__WORKER__TASK_SOFT_TIME_LIMIT_S="1",
        XRAY__WORKER__TASK_TIME_LIMIT_S="10",
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def fragile(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = started_stack(
        redis_server, tmp_path_factory, XRAY__PIPELINES__MOCK_DELAY_S="1.5", XRAY__WORKER__MAX_ATTEMPTS="2"
    )
    yield stack
    stack.stop()


def _kill_pool_processes_once_running(stack: Stack, task_id: str, attempt: int) -> None:
    wait_until(lambda: stack.record(task_id).get("attempts") == attempt)
    worker = psutil.Process(stack.processes["worker"].pid)
    for child in worker.children():
        os.kill(child.pid, signal.SIGKILL)


def test_soft_time_limit_ends_the_task_with_12004(slow_limit: Stack, receiver: CallbackReceiver) -> None:
    task_id = slow_limit.submit(receiver.url())
    payload = receiver.wait_for(task_id)[0].json
    assert payload["status"] == "failed"
    assert payload["error"] == {"code": 12004, "message": "Task timed out"}
    record = slow_limit.record(task_id)
    assert record["status"] == "failed"
    wait_until(lambda: not (slow_limit.upload_dir / record["imageKey"]).exists())  # just after the callback


def test_a_killed_pool_process_gives_its_task_to_another_run(fragile: Stack, receiver: CallbackReceiver) -> None:
    task_id = fragile.submit(receiver.url())
    _kill_pool_processes_once_running(fragile, task_id, attempt=1)
    (callback,) = receiver.wait_for(task_id, timeout_s=60)
    assert callback.json["status"] == "succeeded"
    assert fragile.record(task_id)["attempts"] == 2
    # The broker marked the message redelivered: the second run read the record before the image.
    assert f"task {task_id} was delivered before" in fragile.log("worker")


def test_a_task_that_keeps_killing_its_worker_fails_with_12001(fragile: Stack, receiver: CallbackReceiver) -> None:
    task_id = fragile.submit(receiver.url())
    _kill_pool_processes_once_running(fragile, task_id, attempt=1)
    _kill_pool_processes_once_running(fragile, task_id, attempt=2)
    (callback,) = receiver.wait_for(task_id, timeout_s=60)
    assert callback.json["error"]["code"] == 12001
    assert "gave up after 2 attempts" in callback.json["error"]["message"]
    # Other tasks keep flowing.
    other = fragile.submit(receiver.url())
    assert receiver.wait_for(other, timeout_s=60)[0].json["status"] == "succeeded"


@pytest.fixture
def slow_task_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = started_stack(redis_server, tmp_path_factory, XRAY__PIPELINES__MOCK_DELAY_S="3")
    yield stack
    stack.stop()


def test_a_task_whose_whole_worker_died_completes_once_a_worker_runs(
    slow_task_stack: Stack, receiver: CallbackReceiver
) -> None:
    task_id = slow_task_stack.submit(receiver.url())
    wait_until(lambda: slow_task_stack.record(task_id).get("status") == "processing")
    worker = psutil.Process(slow_task_stack.processes["worker"].pid)
    for process in [*worker.children(recursive=True), worker]:
        os.kill(process.pid, signal.SIGKILL)
    slow_task_stack.stop("worker")
    # The broker alone would hand the message out again after its visibility timeout (an hour).
    slow_task_stack.start_worker("worker-2")
    (callback,) = receiver.wait_for(task_id, timeout_s=60)
    assert callback.json["status"] == "succeeded"
    assert slow_task_stack.record(task_id)["attempts"] == 2
    assert f"task {task_id}: its worker died while running it" in slow_task_stack.log("worker-2")
    assert f"task {task_id} was delivered before" in slow_task_stack.log("worker-2")  # resent, so marked


def test_sigterm_lets_a_short_task_finish_within_the_grace_period(
    slow_task_stack: Stack, receiver: CallbackReceiver
) -> None:
    task_id = slow_task_stack.submit(receiver.url())
    wait_until(lambda: slow_task_stack.record(task_id).get("status") == "processing")
    worker = slow_task_stack.processes["worker"]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert slow_task_stack.record(task_id)["status"] == "succeeded"
    assert receiver.wait_for(task_id)[0].json["status"] == "succeeded"


def test_sigterm_gives_a_long_task_back_to_the_queue_promptly(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = started_stack(
        redis_server, tmp_path_factory, XRAY__PIPELINES__MOCK_DELAY_S="4", XRAY__WORKER__SHUTDOWN_GRACE_S="0.5"
    )
    try:
        task_id = stack.submit(receiver.url())
        wait_until(lambda: stack.record(task_id).get("status") == "processing")
        stack.start_worker("worker-2")
        worker = stack.processes["worker"]
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)  # within the grace period and a cold shutdown, not after the task's 4 s
        (callback,) = receiver.wait_for(task_id, timeout_s=60)
        assert callback.json["status"] == "succeeded"
        assert stack.record(task_id)["attempts"] == 2
    finally:
        stack.stop()


def test_the_hard_time_limit_ends_a_task_that_ignores_the_soft_one(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = started_stack(
        redis_server,
        tmp_path_factory,
        XRAY__PIPELINES__PANO__CLASS="tests.support.custom_pipeline:StubbornPipeline",
        XRAY__WORKER__TASK_SOFT_TIME_LIMIT_S="1",
        XRAY__WORKER__TASK_TIME_LIMIT_S="3",
    )
    try:
        task_id = stack.submit(receiver.url())
        payload = receiver.wait_for(task_id, timeout_s=30)[0].json
        assert payload["error"] == {"code": 12004, "message": "Task timed out"}
        assert "hit the hard time limit" in stack.log("worker")
        wait_until(lambda: not (stack.upload_dir / stack.record(task_id)["imageKey"]).exists())
        # The killed pool process was replaced: the worker still serves.
        assert receiver.wait_for(stack.submit(receiver.url(), "ceph"))[0].json["status"] == "succeeded"
    finally:
        stack.stop()
