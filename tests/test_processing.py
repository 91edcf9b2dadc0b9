"""The worker's task processor, in-process against the test Redis and through a real worker: reading
the image while the task starts (a first run), and only after the record (a run that may have
crashed before)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery.app.task import Context

from pipelines.pano.mock import MockPanoPipeline
from server.core.clock import utc_now
from server.core.persistence import TaskPersistence
from server.core.processing import TaskProcessor
from server.core.status import TaskStatus
from server.core.storage import LocalStorage, new_key
from server.errors import ErrorCode
from server.settings import get_settings
from server.tasks import ran_before
from server.worker import RESENT_HEADER, enqueue_analysis
from tests.support.celery_apps import celery_for
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack

MAX_ATTEMPTS = 2


class ReadCountingStorage(LocalStorage):
    """A real local store that also counts its reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read_bytes(key)


@pytest.fixture
def storage(tmp_path: Path) -> ReadCountingStorage:
    return ReadCountingStorage(tmp_path / "images")


@pytest.fixture
def processor(persistence: TaskPersistence, storage: ReadCountingStorage) -> TaskProcessor:
    pipeline = MockPanoPipeline(mock_delay_s=0)
    pipeline.load()
    return TaskProcessor(persistence, storage, {"pano": pipeline}, max_attempts=MAX_ATTEMPTS, keep_images=True)


def queued_task(
    persistence: TaskPersistence,
    storage: LocalStorage,
    image: bytes,
    callback_url: str = "http://127.0.0.1:9/callback",
    attempts: int = 0,
) -> tuple[str, str]:
    """A stored image and a queued record naming it; (task id, image key)."""
    task_id, key = str(uuid.uuid4()), new_key(".jpg")
    (storage.root / key).write_bytes(image)
    record = {
        "taskId": task_id,
        "taskType": "pano",
        "callbackUrl": callback_url,
        "imageKey": key,
        "status": TaskStatus.QUEUED,
        "createdAt": utc_now(),
        "attempts": attempts,
    }
    assert persistence.claim_task(task_id, record)
    return task_id, key


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_task_gets_the_same_result_with_or_without_reading_ahead(
    persistence: TaskPersistence, storage: ReadCountingStorage, processor: TaskProcessor, prefetch: bool
) -> None:
    task_id, key = queued_task(persistence, storage, jpeg_bytes((64, 48)))
    assert processor.process(task_id, task_type="pano", image_key=key, prefetch=prefetch) == TaskStatus.SUCCEEDED
    record = persistence.get_task(task_id)
    assert record is not None
    assert (record["status"], record["attempts"]) == (TaskStatus.SUCCEEDED, 1)
    assert record["data"]["image"]["width"] == 64
    assert storage.reads == [key]  # read once, whichever way


@pytest.mark.parametrize("prefetch", [True, False])
def test_read_ahead_failures_are_the_tasks_own(
    persistence: TaskPersistence, storage: ReadCountingStorage, processor: TaskProcessor, prefetch: bool
) -> None:
    undecodable, undecodable_key = queued_task(persistence, storage, b"\xff\xd8\xff\xe0 not really a JPEG")
    missing, missing_key = queued_task(persistence, storage, jpeg_bytes())
    (storage.root / missing_key).unlink()
    processor.process(undecodable, task_type="pano", image_key=undecodable_key, prefetch=prefetch)
    processor.process(missing, task_type="pano", image_key=missing_key, prefetch=prefetch)
    assert (persistence.get_task(undecodable) or {})["error"]["code"] == ErrorCode.IMAGE_UNDECODABLE
    assert (persistence.get_task(missing) or {})["error"]["code"] == ErrorCode.IMAGE_NOT_FOUND


def test_the_record_names_the_image_not_the_message(
    persistence: TaskPersistence, storage: ReadCountingStorage, processor: TaskProcessor
) -> None:
    task_id, key = queued_task(persistence, storage, jpeg_bytes((64, 48)))
    other = new_key(".jpg")
    (storage.root / other).write_bytes(jpeg_bytes((32, 16)))
    assert processor.process(task_id, task_type="pano", image_key=other, prefetch=True) == TaskStatus.SUCCEEDED
    assert (persistence.get_task(task_id) or {})["data"]["image"]["width"] == 64
    assert storage.reads == [other, key]


@pytest.mark.parametrize(("prefetch", "reads_image"), [(False, False), (True, True)])
def test_only_a_first_run_reads_the_image_before_the_attempt_limit_is_known(
    persistence: TaskPersistence,
    storage: ReadCountingStorage,
    processor: TaskProcessor,
    prefetch: bool,
    reads_image: bool,
) -> None:
    # Over the limit: the last run died, perhaps decoding this very image. A run that may have
    # crashed before must fail the task without touching it; a first run reads it ahead.
    task_id, key = queued_task(persistence, storage, jpeg_bytes(), attempts=MAX_ATTEMPTS)
    assert processor.process(task_id, task_type="pano", image_key=key, prefetch=prefetch) == TaskStatus.FAILED
    assert (persistence.get_task(task_id) or {})["error"]["code"] == ErrorCode.INFERENCE_FAILED
    assert storage.reads == ([key] if prefetch else [])


def test_an_ended_task_is_not_run_again_even_when_its_image_was_read_ahead(
    persistence: TaskPersistence, storage: ReadCountingStorage, processor: TaskProcessor
) -> None:
    task_id, key = queued_task(persistence, storage, jpeg_bytes())
    assert processor.process(task_id, task_type="pano", image_key=key) == TaskStatus.SUCCEEDED
    ended = persistence.get_task(task_id)
    assert processor.process(task_id, task_type="pano", image_key=key, prefetch=True) == TaskStatus.SUCCEEDED
    assert persistence.get_task(task_id) == ended


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({"delivery_info": {"routing_key": "pano", "redelivered": False}}, False),
        ({"delivery_info": {"routing_key": "pano"}}, False),
        ({"delivery_info": {"routing_key": "pano", "redelivered": True}}, True),  # kombu's restore of a lost run
        ({"delivery_info": {"routing_key": "pano"}, RESENT_HEADER: True}, True),  # the resend for a dead worker
    ],
)
def test_which_messages_count_as_having_run_before(request_fields: dict[str, object], expected: bool) -> None:
    assert ran_before(Context(request_fields)) is expected


def test_a_resent_message_runs_with_its_record_read_first(stack: Stack, receiver: CallbackReceiver) -> None:
    settings = get_settings()  # the stack's
    with TaskPersistence(settings) as persistence:
        resent, key = queued_task(persistence, LocalStorage(stack.upload_dir), jpeg_bytes(), receiver.url())
    enqueue_analysis(resent, "pano", key, app=celery_for(settings), resent=True)  # as the reaper does
    first = stack.submit(receiver.url())
    assert receiver.wait_for(resent)[0].json["status"] == "succeeded"
    assert receiver.wait_for(first)[0].json["status"] == "succeeded"
    log = stack.log("worker")
    assert f"task {resent} was delivered before; reading its record before its image" in log
    assert f"task {first} was delivered before" not in log


def test_start_while_working_survives_a_flushed_script_cache(persistence: TaskPersistence) -> None:
    task_id = str(uuid.uuid4())
    assert persistence.claim_task(task_id, {"status": TaskStatus.QUEUED, "attempts": 0})
    persistence.redis_client.script_flush()  # what a Redis restart does to loaded scripts
    record, done = persistence.start_attempt_during(task_id, {"status": TaskStatus.PROCESSING}, lambda: "done")
    assert done == "done"
    assert record is not None
    assert (record["status"], record["attempts"]) == (TaskStatus.PROCESSING, 1)


def test_work_that_raises_leaves_no_unread_answer_behind(persistence: TaskPersistence) -> None:
    task_id = str(uuid.uuid4())
    assert persistence.claim_task(task_id, {"status": TaskStatus.QUEUED, "attempts": 0})

    def failing() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        persistence.start_attempt_during(task_id, {"status": TaskStatus.PROCESSING}, failing)
    # The exception comes through, the attempt was counted, and the client answers as before
    # (were the connection put back with the answer unread, a command could read that instead).
    assert persistence.redis_client.ping() is True
    assert persistence.get_task(task_id) == {"status": TaskStatus.PROCESSING, "attempts": 1}
