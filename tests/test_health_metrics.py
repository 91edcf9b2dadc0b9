"""Health for orchestrators and people, and Prometheus metrics from the API, workers and delivery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import TEST_DATABASES, new_stack
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


def test_health_with_workers_serving_every_queue(stack: Stack) -> None:
    # Checks are cached for a couple of seconds: a report from before the worker was up may linger.
    wait_until(lambda: httpx.get(f"{stack.base_url}/health", timeout=10).status_code == 200)
    for path in ("/health", "/api/v1/health"):
        answer = httpx.get(f"{stack.base_url}{path}", timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["service"]) == ("healthy", "api")
        checks = body["checks"]
        assert checks["redis"]["ok"] and checks["broker"]["ok"]
        assert checks["workers"]["pano"]["live"] == 1 and checks["workers"]["ceph"]["live"] == 1
    assert httpx.get(f"{stack.base_url}/livez").status_code == 200
    assert httpx.get(f"{stack.base_url}/readyz").status_code == 200


def test_without_a_worker_the_api_is_ready_but_not_healthy(api_only: Stack) -> None:
    answer = httpx.get(f"{api_only.base_url}/health", timeout=10)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["workers"]["pano"] == {"ok": False, "live": 0, "pipelineFailed": 0}
    assert httpx.get(f"{api_only.base_url}/readyz").status_code == 200


def test_without_redis_only_livez_answers_ok(tmp_path_factory: pytest.TempPathFactory) -> None:
    own_redis = EmbeddedRedis(tmp_path_factory.mktemp("redis-health"), databases=TEST_DATABASES)
    own_redis.start()
    stack = new_stack(own_redis, tmp_path_factory)
    try:
        stack.start_api()
        assert httpx.get(f"{stack.base_url}/readyz", timeout=10).status_code == 200
        own_redis.stop()
        wait_until(lambda: httpx.get(f"{stack.base_url}/readyz", timeout=10).status_code == 503, timeout_s=20)
        health = httpx.get(f"{stack.base_url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["checks"]["redis"]["ok"] is False
        assert httpx.get(f"{stack.base_url}/livez").status_code == 200
    finally:
        stack.stop()
        own_redis.stop()


@pytest.fixture(scope="module")
def measured(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__METRICS__WORKER_PORT=str(free_port()),
        XRAY__METRICS__DELIVERY_PORT=str(free_port()),
    )
    stack.start_all()
    yield stack
    stack.stop()


def test_metrics_of_api_workers_and_delivery(measured: Stack, receiver: CallbackReceiver) -> None:
    task_ids = [measured.submit(receiver.url()) for _ in range(4)] + [measured.submit(receiver.url(), "ceph")]
    for task_id in task_ids:
        receiver.wait_for(task_id)
    api = samples(f"{measured.base_url}/metrics")
    assert value(api, "xray_http_requests_total", route="/api/v1/analyze", status="202") == 5
    assert value(api, "xray_http_request_duration_seconds_count", route="/api/v1/analyze") == 5
    assert ("xray_queue_depth", frozenset({("queue", "pano")})) in api
    worker_port = measured.settings["XRAY__METRICS__WORKER_PORT"]
    # Counted in two pool processes, reported as one.
    wait_until(lambda: value(samples(f"http://127.0.0.1:{worker_port}/metrics"), "xray_tasks_total") == 5)
    worker = samples(f"http://127.0.0.1:{worker_port}/metrics")
    assert value(worker, "xray_tasks_total", task_type="pano", outcome="succeeded") == 4
    assert value(worker, "xray_task_duration_seconds_count", task_type="ceph", outcome="succeeded") == 1
    assert value(worker, "xray_pipeline_load_seconds", task_type="pano", kind="mock") > 0
    delivery_port = measured.settings["XRAY__METRICS__DELIVERY_PORT"]
    delivered = samples(f"http://127.0.0.1:{delivery_port}/metrics")
    assert value(delivered, "xray_callback_attempts_total", outcome="delivered") == 5
