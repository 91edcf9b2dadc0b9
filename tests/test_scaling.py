"""Several API processes and concurrent tasks keep every guarantee."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator

import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack
from tests.test_flow import _race


@pytest.fixture(scope="module")
def slow_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two API processes, one worker with two pool processes, one second of mock inference."""
    stack = new_stack(redis_server, tmp_path_factory, XRAY__PIPELINES__MOCK_DELAY_S="1")
    stack.start_all(api_workers=2)
    yield stack
    stack.stop()


def test_two_api_processes_still_accept_a_task_id_once(slow_stack: Stack, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    statuses = asyncio.run(_race(slow_stack.base_url, task_id, receiver.url(), 50))
    assert sorted(set(statuses)) == [202, 409]
    assert statuses.count(202) == 1
    receiver.wait_for(task_id)


def test_api_processes_are_separate_processes(slow_stack: Stack) -> None:
    import psutil

    api = psutil.Process(slow_stack.processes["api"].pid)
    servers = [
        child
        for child in api.children()
        if "multiprocessing.spawn" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]
    assert len(servers) == 2
    # Each process logs with the service's format (its own logging set-up, not the parent's).
    pids = {int(pid) for pid in re.findall(r"INFO \[(\d+)\] server\.api: API ready", slow_stack.log("api"))}
    assert pids == {server.pid for server in servers}


def test_two_concurrent_tasks_both_complete_and_overlap(slow_stack: Stack, receiver: CallbackReceiver) -> None:
    task_ids = [str(uuid.uuid4()) for _ in range(2)]
    for task_id in task_ids:
        response = slow_stack.post_analyze(
            {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes())
        )
        assert response.status_code == 202
    for task_id in task_ids:
        assert receiver.wait_for(task_id)[0].json["status"] == "succeeded"
    first, second = (slow_stack.record(task_id) for task_id in task_ids)
    # Each started before the other completed: the two pool processes ran them side by side.
    assert str(first["startedAt"]) < str(second["completedAt"])
    assert str(second["startedAt"]) < str(first["completedAt"])
