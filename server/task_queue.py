"""Creating an accepted task's record and queueing its message: both, or neither.

When the broker is the task store's own Redis (the default), one Lua step writes the record and
pushes the Celery message. A task then exists exactly when its message is queued: an API process
that dies between two separate steps can no longer leave a record that no worker will ever run,
whose client, refused with 409 when it retries, would wait for a callback forever. It is also one
round trip instead of two, and it skips Celery's general-purpose send path (routing, retry
wrappers, producer pool), which cost the API about 0.25 ms of CPU per request.

The message is still built by Celery and kombu: Celery's protocol-2 task message, kombu's JSON
serializer, and the Redis channel's own envelope and publish-time fields. Only the LPUSH is moved
into the script. A test checks that the result matches what `send_task` publishes.

With any other broker (a separate Redis, TLS, AMQP), the record is claimed first, the message is
published with Celery, and the claim is released if the publish fails.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import kombu.exceptions
import kombu.serialization
import kombu.utils.json
import redis
from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu import Exchange

from server.core.persistence import QueuedMessage, TaskPersistence
from server.errors import DependencyUnavailable
from server.settings import Settings
from server.worker import ANALYZE_TASK_NAME, analyze_call, celery_app, enqueue_analysis

logger = logging.getLogger(__name__)


class TaskQueue(Protocol):
    def create(self, ref: str, record: Mapping[str, Any], task_type: str) -> bool:
        """Create the task's record and queue its message; False (nothing written) when the id is taken.

        `DependencyUnavailable` when the store or the broker cannot be reached; nothing is left
        behind then either.
        """

    def close(self) -> None: ...


class AnalyzeMessages:
    """`analyze_task` messages exactly as the Redis transport would store them after `send_task`."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._origin = anon_nodename()  # the publishing process, as Celery names it
        # Read once: Celery's configuration lookups cost microseconds each, per request otherwise.
        self._ignore_result = bool(app.conf.task_ignore_result)
        self._serializer = str(app.conf.task_serializer)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None

    def _kombu_channel(self) -> Any:
        # Opened on first use, not at start-up: opening it pings the broker, and an API must start
        # (and report not ready) while Redis is down. Nothing is sent through it afterwards.
        channel = self._channel
        if channel is not None:
            return channel
        # Not under the lock: while the broker is unreachable each request waits for its own one
        # connection attempt (as long as its claim would), not behind every request before it.
        connection = self._app.connection_for_write()
        try:
            connection.ensure_connection(max_retries=0)  # one attempt, never kombu's reconnect loop
            channel = connection.channel()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.release()
            raise
        with self._lock:
            if self._channel is None:
                self._channel, self._connection = channel, connection
                return channel
        connection.release()  # another request opened one first
        return self._channel

    def build(self, task_id: str, queue: str, image_key: str | None = None) -> QueuedMessage:
        channel = self._kombu_channel()
        task = self._app.amqp.as_task_v2(
            task_id,
            ANALYZE_TASK_NAME,
            origin=self._origin,
            ignore_result=self._ignore_result,
            **analyze_call(task_id, image_key),
        )
        content_type, encoding, body = kombu.serialization.dumps(task.body, serializer=self._serializer)
        properties = {**task.properties, "delivery_mode": Exchange.PERSISTENT_DELIVERY_MODE}  # as Celery publishes
        message = channel.prepare_message(body, 0, content_type, encoding, task.headers, properties)
        # What the channel does to every message it publishes: encode the body, give it a delivery
        # tag, record where it was sent (the default exchange and the queue as routing key, which
        # is also where kombu puts it back when a worker dies holding it).
        channel._inplace_augment_message(message, "", queue)
        return QueuedMessage(channel._q_for_pri(queue, 0), kombu.utils.json.dumps(message))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.release()
            self._connection = self._channel = None


class SameRedisQueue:
    """The broker is the task store's Redis: record and message written by one script."""

    def __init__(self, persistence: TaskPersistence, messages: AnalyzeMessages) -> None:
        self.persistence = persistence
        self.messages = messages

    def create(self, ref: str, record: Mapping[str, Any], task_type: str) -> bool:
        try:
            message = self.messages.build(ref, task_type, record.get("imageKey"))
            return self.persistence.claim_task(ref, record, message)
        except (redis.RedisError, kombu.exceptions.KombuError, OSError) as exc:
            logger.error("task %s refused: Redis unavailable: %s", ref, exc)
            raise DependencyUnavailable("the task store is unavailable; retry later") from None

    def close(self) -> None:
        self.messages.close()


class SeparateBrokerQueue:
    """Another broker: claim the record, publish with Celery, release the claim if that fails."""

    def __init__(self, persistence: TaskPersistence, app: Celery) -> None:
        self.persistence = persistence
        self.app = app

    def create(self, ref: str, record: Mapping[str, Any], task_type: str) -> bool:
        try:
            claimed = self.persistence.claim_task(ref, record)
        except redis.RedisError as exc:
            logger.error("task %s refused: Redis unavailable: %s", ref, exc)
            raise DependencyUnavailable("the task store is unavailable; retry later") from None
        if not claimed:
            return False
        try:
            enqueue_analysis(ref, task_type, record.get("imageKey"), app=self.app)
        except (kombu.exceptions.KombuError, OSError, redis.RedisError) as exc:
            logger.error("task %s refused: broker unavailable: %s", ref, exc)
            try:
                self.persistence.delete_task(ref)
            except redis.RedisError:
                logger.exception("task %s: could not release the claim", ref)
            raise DependencyUnavailable("the task queue is unavailable; retry later") from None
        return True

    def close(self) -> None:
        """Celery's producer pool is the app's to close."""


def broker_is_task_store(app: Celery, settings: Settings) -> bool:
    """Whether `app` publishes to and consumes from the very Redis database the task records live in.

    Asked of Celery's resolved configuration, not of ours: CELERY_BROKER_URL and its read/write
    variants in the environment override the configured broker, and a message pushed into the
    task store while workers read another broker would never run.
    """
    conf = app.conf
    return conf.broker_write_url == conf.broker_read_url == settings.redis.url()


def task_queue(settings: Settings, persistence: TaskPersistence, app: Celery = celery_app) -> TaskQueue:
    if broker_is_task_store(app, settings):
        return SameRedisQueue(persistence, AnalyzeMessages(app))
    return SeparateBrokerQueue(persistence, app)
