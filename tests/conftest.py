"""Shared fixtures: one private Redis server per test run, real service processes, real receivers."""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.persistence import TaskPersistence, redis_client
from server.embedded_redis import EmbeddedRedis
from server.settings import Settings, get_settings, settings_from_mapping
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack

_databases = itertools.count(1)
TEST_DATABASES = 64  # one per service stack the tests start, and one for in-process tests
IN_PROCESS_DB = TEST_DATABASES - 1


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis server of the tests' own, on a free port: nothing else's data can be touched."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), databases=TEST_DATABASES)
    server.start()
    yield server
    server.stop()


def new_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Stack:
    db = next(_databases)
    assert db < IN_PROCESS_DB, "more stacks than Redis databases"
    return Stack(redis_server, db, tmp_path_factory.mktemp(f"stack{db}"), **settings)


@contextlib.contextmanager
def running_api(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[Stack]:
    """A new stack with only its API running, stopped when the block ends."""
    stack = new_stack(redis_server, tmp_path_factory, **settings)
    stack.start_api()
    try:
        yield stack
    finally:
        stack.stop()


def started_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Stack:
    """A new stack with API, worker and callback delivery running."""
    return new_stack(redis_server, tmp_path_factory, **settings).start_all()


@pytest.fixture(scope="session")
def stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, one worker (2 pool processes) and callback delivery; mock delay 0, retries 0.2 s apart.

    The test process is configured like them.
    """
    service = new_stack(redis_server, tmp_path_factory, XRAY__CALLBACK__RETRY_SCHEDULE="[0.2, 0.2]")
    saved = dict(os.environ)
    os.environ.update(service.settings)
    get_settings.cache_clear()
    service.start_all()
    yield service
    service.stop()
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def api_only(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with no worker: whatever a request leaves in Redis or the queues stays visible."""
    with running_api(redis_server, tmp_path_factory) as stack:
        yield stack


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture
def settings(redis_server: EmbeddedRedis, tmp_path: Path) -> Settings:
    """Settings for in-process components; they share database IN_PROCESS_DB and keep apart by unique task ids."""
    db = IN_PROCESS_DB
    return settings_from_mapping(
        {
            "redis": {"host": redis_server.host, "port": redis_server.port, "db": db, "key_prefix": "xray-test:"},
            "api": {"upload_dir": str(tmp_path / "uploads")},
            # The receivers listen on loopback, which the production default refuses.
            "callback": {"timeout": 1.0, "allow_private_networks": True},
            "task": {"result_ttl": 600},
        }
    )


@pytest.fixture
def private_settings(settings: Settings) -> Iterator[Settings]:
    """`settings` under a key prefix of the test's own, removed with everything under it afterwards:
    for tests of what scans shared keys (the running set, the due set, the hand-off list)."""
    redis_section = settings.redis.model_dump(mode="json") | {"key_prefix": f"xray-test-{uuid.uuid4().hex}:"}
    private = settings_from_mapping(settings.model_dump(mode="json") | {"redis": redis_section})
    yield private
    with redis_client(private.redis) as client:
        keys = list(client.scan_iter(f"{private.redis.key_prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def persistence(private_settings: Settings) -> Iterator[TaskPersistence]:
    """A task store client under `private_settings` (a test module may define its own instead)."""
    with TaskPersistence(private_settings) as persistence:
        yield persistence
