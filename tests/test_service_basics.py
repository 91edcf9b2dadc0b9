"""The seed's steps 5 and 6: the API skeleton and the Celery configuration."""

from __future__ import annotations

import re

import httpx

from server import SERVICE_NAME, __version__
from server.settings import get_settings
from tests.support.stack import Stack, wait_until


def test_seed_step_5_root_and_health(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/").json() == {
        "service": SERVICE_NAME,
        "version": __version__,
        "status": "running",
    }
    wait_until(lambda: httpx.get(f"{stack.base_url}/health").status_code == 200)  # checks are cached 2 s
    for path in ("/health", "/api/v1/health"):
        response = httpx.get(f"{stack.base_url}{path}")
        assert response.status_code == 200
        body = response.json()
        # The seed's body, and what was checked beside it.
        assert {key: body[key] for key in ("status", "service")} == {"status": "healthy", "service": "api"}
        assert set(body["checks"]) == {"redis", "broker", "workers"}


def test_seed_step_6_celery_is_configured_for_at_least_once_delivery(stack: Stack) -> None:
    from server.worker import celery_app

    conf = celery_app.conf
    settings = get_settings()
    assert conf.broker_url == settings.redis.url()
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert [queue.name for queue in conf.task_queues] == ["pano", "ceph"]
    assert {queue.routing_key for queue in conf.task_queues} == {"pano", "ceph"}
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)


def test_pipelines_load_once_in_each_pool_process_and_never_in_the_parent(stack: Stack) -> None:
    from tests.support.receiver import CallbackReceiver

    receiver = CallbackReceiver()
    try:
        for _ in range(6):
            receiver.wait_for(stack.submit(receiver.url()))
    finally:
        receiver.close()
    log = stack.log("worker")
    loaded_in = re.findall(r"\[(\d+)\] server\.core\.pipeline_loading: pipeline pano \(mock\) loaded", log)
    worker = stack.processes["worker"].pid
    assert len(loaded_in) == 2  # worker.concurrency pool processes, each once
    assert str(worker) not in loaded_in
