"""Creating a task: record and broker message in one Redis step, the message as Celery's own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from server.core.persistence import TaskPersistence, task_key
from server.core.storage import new_key
from server.embedded_redis import free_port
from server.errors import DependencyUnavailable
from server.settings import Settings, settings_from_mapping
from server.task_queue import AnalyzeMessages, SameRedisQueue, SeparateBrokerQueue, task_queue
from server.worker import enqueue_analysis
from tests.support.celery_apps import celery_for, with_broker


@pytest.fixture
def app(settings: Settings) -> Iterator[Celery]:
    app = celery_for(settings)
    yield app
    app.close()


@pytest.fixture
def messages(app: Celery) -> Iterator[AnalyzeMessages]:
    messages = AnalyzeMessages(app)
    yield messages
    messages.close()


@pytest.fixture
def persistence(settings: Settings) -> Iterator[TaskPersistence]:
    persistence = TaskPersistence(settings)
    yield persistence
    persistence.close()


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def call_of(messages: AnalyzeMessages, message: dict[str, Any]) -> list[Any]:
    """The args and kwargs a worker decodes from a queued message's body."""
    body = messages._kombu_channel().decode_body(message["body"], message["properties"]["body_encoding"])
    return list(json.loads(body)[:2])


def without_per_message_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The envelope less what differs between any two publishes (ids, tag, publisher)."""
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id", "argsrepr", "origin")}
    properties = {
        k: v
        for k, v in message["properties"].items()
        # send_task also copies argsrepr/kwargsrepr into the properties and names a reply queue
        # for result backends; the worker reads neither (results are not stored).
        if k not in ("correlation_id", "delivery_tag", "reply_to", "argsrepr", "kwargsrepr")
    }
    return {**message, "headers": headers, "properties": properties, "body": None}


def test_built_message_is_what_enqueue_analysis_publishes(
    app: Celery, messages: AnalyzeMessages, persistence: TaskPersistence
) -> None:
    queue = f"xray-test-queue-{uuid.uuid4().hex}"
    client = persistence.redis_client
    sent_id, built_id = str(uuid.uuid4()), str(uuid.uuid4())
    image_key = new_key(".jpg")
    try:
        enqueue_analysis(sent_id, queue, image_key, app=app)  # the path a separate broker takes
        built = messages.build(built_id, queue, image_key)
        assert built.queue_key == queue
        [sent] = queued(client, queue)
        mine = json.loads(built.payload)
        sent["headers"]["ignore_result"] = True  # send_task leaves it unset; the task ignores results either way
        assert without_per_message_fields(mine) == without_per_message_fields(sent)
        assert mine["headers"]["id"] == mine["headers"]["root_id"] == mine["properties"]["correlation_id"] == built_id
        assert mine["headers"]["argsrepr"] == repr([built_id])
        assert mine["properties"]["delivery_info"] == {"exchange": "", "routing_key": queue}
        # The body decodes the way the worker decodes it: base64 JSON of (args, kwargs, embed).
        assert call_of(messages, mine) == [[built_id], {"image_key": image_key}]
        assert call_of(messages, sent) == [[sent_id], {"image_key": image_key}]
        # Each message gets its own delivery tag (kombu's unacked bookkeeping is keyed by it).
        tags = {json.loads(messages.build(built_id, queue).payload)["properties"]["delivery_tag"] for _ in range(2)}
        assert len(tags) == 2
    finally:
        # send_task also declared the queue: kombu's binding records go too.
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


def test_record_and_message_are_written_together_or_not_at_all(
    settings: Settings, persistence: TaskPersistence, messages: AnalyzeMessages
) -> None:
    queue = SameRedisQueue(persistence, messages)
    client = persistence.redis_client
    ref = f"tenant:{uuid.uuid4()}"
    task_type = f"xray-test-queue-{uuid.uuid4().hex}"  # a queue of its own, which no worker reads
    other_type = f"xray-test-queue-{uuid.uuid4().hex}"
    record = {"taskId": ref, "taskType": task_type, "imageKey": new_key(".png"), "status": "queued", "attempts": 0}
    try:
        assert queue.create(ref, record, task_type)
        assert persistence.get_task(ref) == record
        [message] = queued(client, task_type)
        assert call_of(messages, message) == [[ref], {"image_key": record["imageKey"]}]
        assert client.ttl(task_key(settings.redis.key_prefix, ref)) > 0
        # The id is taken: the record stays, and nothing is queued anywhere.
        assert not queue.create(ref, {**record, "taskType": other_type}, other_type)
        assert persistence.get_task(ref) == record
        assert [queued_message["headers"]["id"] for queued_message in queued(client, task_type)] == [ref]
        assert client.exists(other_type) == 0
    finally:
        client.delete(task_type, other_type)
        persistence.delete_task(ref)


def test_the_queue_follows_where_the_broker_is(
    settings: Settings, persistence: TaskPersistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    same_redis = (settings, with_broker(settings, settings.redis.url()))
    for configured in same_redis:
        assert isinstance(task_queue(settings, persistence, celery_for(configured)), SameRedisQueue)
    for url in (settings.redis.url(db=settings.redis.db + 1), "amqp://guest:guest@rabbit.test:5672//"):
        app = celery_for(with_broker(settings, url))
        assert isinstance(task_queue(settings, persistence, app), SeparateBrokerQueue)
    # Celery lets the environment override the configured broker, for publishing or consuming.
    for variable in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
        with monkeypatch.context() as patched:
            patched.setenv(variable, settings.redis.url(db=settings.redis.db + 1))
            assert isinstance(task_queue(settings, persistence, celery_for(settings)), SeparateBrokerQueue)


def test_redis_down_is_dependency_unavailable(settings: Settings) -> None:
    gone = settings_from_mapping(
        settings.model_dump(mode="json")
        | {"redis": {**settings.redis.model_dump(mode="json"), "port": free_port(), "socket_timeout_s": 1}}
    )
    app = celery_for(gone)
    persistence, messages = TaskPersistence(gone), AnalyzeMessages(app)
    try:
        with pytest.raises(DependencyUnavailable, match="task store is unavailable"):
            SameRedisQueue(persistence, messages).create("t", {"status": "queued"}, "pano")
    finally:
        messages.close()
        persistence.close()
        app.close()
