from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.status import CANCELED, Outcome, TaskStatus
from server.settings import Settings


def test_seed_step_3_save_get_exists_delete(settings: Settings, request: pytest.FixtureRequest) -> None:
    persistence = TaskPersistence(settings.model_dump())  # the seed passes load_config()'s dict
    request.addfinalizer(persistence.close)
    task_id = str(uuid.uuid4())
    metadata = {
        "taskId": task_id,
        "taskType": "pano",
        "imagePath": "/tmp/test.jpg",
        "callbackUrl": "http://test.com/callback",
        "createdAt": time.time(),
    }
    assert persistence.save_task(task_id, metadata) is True
    assert persistence.get_task(task_id) == metadata
    assert persistence.task_exists(task_id) is True
    assert persistence.delete_task(task_id) is True
    assert persistence.task_exists(task_id) is False
    assert persistence.get_task(task_id) is None


def test_records_expire_after_result_ttl(settings: Settings, request: pytest.FixtureRequest) -> None:
    persistence = TaskPersistence(settings)
    request.addfinalizer(persistence.close)
    task_id = str(uuid.uuid4())
    assert persistence.claim_task(task_id, {"status": "queued"})
    ttl = persistence.redis_client.ttl(persistence._build_key(task_id))
    assert 0 < ttl <= settings.task.result_ttl


def test_claim_is_atomic_across_threads(settings: Settings, request: pytest.FixtureRequest) -> None:
    persistence = TaskPersistence(settings)
    request.addfinalizer(persistence.close)
    task_id = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda n: persistence.claim_task(task_id, {"status": "queued", "n": n}), range(50)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert persistence.get_task(task_id) == {"status": "queued", "n": winner}


def test_a_task_ends_once_and_owes_its_callback(private_settings: Settings, request: pytest.FixtureRequest) -> None:
    settings = private_settings  # ending a task writes the shared due set and hand-off list
    persistence = TaskPersistence(settings)
    request.addfinalizer(persistence.close)
    outbox = CallbackOutbox(persistence)
    task_id = str(uuid.uuid4())
    assert not outbox.end_task(task_id, Outcome(TaskStatus.SUCCEEDED))  # no such task
    queued = {"status": "queued", "attempts": 0, "taskType": "pano", "callbackUrl": "http://receiver.test/cb"}
    persistence.claim_task(task_id, queued)
    persistence.start_attempt(task_id, {"status": "processing"})
    assert persistence.redis_client.sismember(persistence.running_key, persistence._build_key(task_id))
    assert outbox.end_task(task_id, Outcome(TaskStatus.SUCCEEDED, data={"teeth": []}))
    assert not outbox.end_task(task_id, CANCELED)  # a second end, a cancel included, is refused
    record = persistence.get_task(task_id)
    assert record is not None
    assert (record["status"], record["data"], record["error"]) == ("succeeded", {"teeth": []}, None)
    assert record["callback"]["status"] == "pending"
    assert persistence.redis_client.zscore(outbox.due_key, task_id) is not None
    assert not persistence.redis_client.sismember(persistence.running_key, persistence._build_key(task_id))
    ttl = persistence.redis_client.ttl(persistence._build_key(task_id))
    assert 0 < ttl <= settings.task.result_ttl


def test_keys_carry_the_configured_prefix(settings: Settings, request: pytest.FixtureRequest) -> None:
    persistence = TaskPersistence(settings)
    request.addfinalizer(persistence.close)
    task_id = str(uuid.uuid4())
    persistence.claim_task(task_id, {"status": "queued"})
    assert persistence.redis_client.exists(f"xray-test:task:{task_id}")


def test_start_attempt_counts_and_returns_the_record_but_never_restarts_an_ended_task(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    persistence = TaskPersistence(settings)
    request.addfinalizer(persistence.close)
    task_id = str(uuid.uuid4())
    assert persistence.start_attempt(task_id, {"status": "processing"}) is None
    persistence.claim_task(task_id, {"status": "queued", "attempts": 0, "taskType": "pano"})
    first = persistence.start_attempt(task_id, {"status": "processing", "startedAt": "t1"})
    assert first == {"status": "processing", "attempts": 1, "taskType": "pano", "startedAt": "t1"}
    second = persistence.start_attempt(task_id, {"status": "processing", "startedAt": "t2"})
    assert second is not None and second["attempts"] == 2
    CallbackOutbox(persistence).end_task(task_id, Outcome(TaskStatus.FAILED))
    ended = persistence.start_attempt(task_id, {"status": "processing", "startedAt": "t3"})
    assert ended is not None
    assert (ended["status"], ended["attempts"], ended["startedAt"]) == ("failed", 2, "t2")
