"""The broker transport: kombu's Redis transport with one reused client per channel, on plain Redis URLs only."""

from __future__ import annotations

import uuid
from typing import cast

import kombu
import pytest
from kombu.transport import pyamqp
from kombu.transport import redis as kombu_redis

from server.redis_transport import TRANSPORT_PATH, Channel, Transport
from server.settings import Settings
from tests.support.celery_apps import celery_for, with_broker


def test_celery_publishes_to_plain_redis_through_the_reused_client_transport(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with celery_for(settings).connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
    # TLS Redis and other brokers keep the transport their URL names (building it connects nowhere),
    # also when the URL comes from Celery's environment override rather than our settings.
    for url, stock in (
        ("rediss://redis.test:6380/0", kombu_redis.Transport),
        ("amqp://guest:guest@rabbit.test:5672//", pyamqp.Transport),
    ):
        with celery_for(with_broker(settings, url)).connection_for_write() as connection:
            assert type(connection.transport) is stock
        with monkeypatch.context() as patched:
            patched.setenv("CELERY_BROKER_URL", url)
            with celery_for(settings).connection_for_write() as connection:
                assert type(connection.transport) is stock


def test_a_channel_reuses_one_client_and_messages_still_flow(settings: Settings) -> None:
    queue = kombu.Queue(f"xray-test-transport-{uuid.uuid4().hex}")
    with kombu.Connection(settings.broker_url, transport=TRANSPORT_PATH) as connection:
        channel = cast(Channel, connection.channel())
        try:
            with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
                assert first is second
            given = kombu.Producer(channel)
            given.publish({"n": 1}, routing_key=queue.name, exchange="", declare=[queue])
            with connection.SimpleQueue(queue.name) as inbox:
                message = inbox.get(timeout=5)
                message.ack()
                assert message.payload == {"n": 1}
            # kombu replaces its pool after a fork or a lost connection: the client follows it.
            channel._disconnect_pools()  # type: ignore[attr-defined]  # untyped in kombu
            with channel.conn_or_acquire() as third:
                assert third is not first
                assert third.connection_pool is channel.pool
                assert third.ping()
        finally:
            queue(channel).delete()
            channel.close()
