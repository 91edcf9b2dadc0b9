"""Redis or the broker down: 503/10007 with Retry-After, and the refused request leaves nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import TEST_DATABASES, new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def broker_down(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Task store reachable, broker not."""
    stack = new_stack(redis_server, tmp_path_factory, XRAY__CELERY__BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    stack.start_api()
    yield stack
    stack.stop()


def _analyze(stack: Stack) -> tuple[int, dict[str, Any], str | None]:
    response = stack.post_analyze(
        {"taskId": str(uuid.uuid4()), "taskType": "pano", "callbackUrl": "http://127.0.0.1:9/cb"},
        ("x.jpg", jpeg_bytes()),
    )
    return response.status_code, response.json(), response.headers.get("retry-after")


def test_broker_down_is_503_and_the_claim_is_released(broker_down: Stack) -> None:
    status, body, retry_after = _analyze(broker_down)
    assert (status, body["code"]) == (503, 10007)
    assert retry_after is not None and int(retry_after) > 0
    assert broker_down.task_keys() == []
    assert broker_down.stored_files() == []


def test_redis_down_is_503_and_no_file_is_left(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own_redis = EmbeddedRedis(tmp_path_factory.mktemp("doomed-redis"), appendonly=False, databases=TEST_DATABASES)
    own_redis.start()
    stack = new_stack(own_redis, tmp_path_factory)
    stack.start_api()
    try:
        own_redis.stop()
        status, body, retry_after = _analyze(stack)
        assert (status, body["code"]) == (503, 10007)
        assert body["detail"] and "retry later" in body["detail"]
        assert retry_after is not None
        assert stack.stored_files() == []
        for answer in (
            httpx.get(f"{stack.base_url}/api/v1/task/{uuid.uuid4()}", timeout=30),
            httpx.post(f"{stack.base_url}/api/v1/task/{uuid.uuid4()}/cancel", timeout=30),
        ):
            assert (answer.status_code, answer.json()["code"]) == (503, 10007)
            assert answer.headers["retry-after"]
        # Back up again: the same API serves without a restart.
        own_redis.start()
        status, body, _ = _analyze(stack)
        assert status == 202, body
    finally:
        stack.stop()
        own_redis.stop()


def test_a_task_accepted_before_a_redis_restart_still_completes(
    tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    own_redis = EmbeddedRedis(tmp_path_factory.mktemp("aof-redis"), appendonly=True, databases=TEST_DATABASES)
    own_redis.start()
    stack = new_stack(own_redis, tmp_path_factory)
    stack.start_api()
    try:
        task_id = str(uuid.uuid4())
        response = stack.post_analyze(
            {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes())
        )
        assert response.status_code == 202
        own_redis.stop()  # a clean shutdown writes the append-only file out
        own_redis.start()
        stack.start_worker()
        stack.start_delivery()
        assert receiver.wait_for(task_id, timeout_s=60)[0].json["status"] == "succeeded"
    finally:
        stack.stop()
        own_redis.stop()
