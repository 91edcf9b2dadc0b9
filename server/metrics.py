"""Prometheus metrics of every role, correct with several processes per role.

The API's uvicorn workers and a Celery worker's pool processes each count in their own process;
prometheus_client's multiprocess mode (one directory per process group, named by
`PROMETHEUS_MULTIPROC_DIR`) adds them up at scrape time. `use_process_group()` must therefore run
in an entry point before anything imports prometheus_client (it lives in `server.metrics_dir` for
that reason); the metric objects below are then created in multiprocess mode. Without it (tests
in one process) they are ordinary metrics.

    xray_http_requests_total{method, route, status}        API requests
    xray_http_request_duration_seconds{method, route}      API latency (analyze: the accept latency)
    xray_queue_depth{queue}                                messages waiting per queue (at scrape)
    xray_tasks_total{task_type, outcome}                   tasks ended by a worker
    xray_task_duration_seconds{task_type, outcome}         start to end of a task in a worker
    xray_pipeline_load_seconds{task_type, kind}            time a pool process took to load a pipeline
    xray_callback_attempts_total{outcome}                  delivery attempts: delivered, retry, failed, superseded
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from server.metrics_dir import MULTIPROC_VARIABLE

HTTP_REQUESTS = Counter("xray_http_requests_total", "API requests", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "xray_http_request_duration_seconds",
    "API request duration",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASKS = Counter("xray_tasks_total", "Tasks ended by a worker", ["task_type", "outcome"])
TASK_DURATION = Histogram(
    "xray_task_duration_seconds",
    "Task run time in a worker, decode to recorded outcome",
    ["task_type", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PIPELINE_LOAD = Gauge(
    "xray_pipeline_load_seconds", "Seconds a pool process took to load a pipeline", ["task_type", "kind"],
    multiprocess_mode="max",
)  # fmt: skip
CALLBACK_ATTEMPTS = Counter("xray_callback_attempts_total", "Callback delivery attempts", ["outcome"])


class QueueDepth(Collector):
    """Messages waiting per queue, read when scraped (Redis broker: the queue is a list of its name)."""

    def __init__(self, depth_of: Callable[[Sequence[str]], Sequence[int]], queues: Sequence[str]) -> None:
        self.depth_of = depth_of
        self.queues = tuple(queues)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("xray_queue_depth", "Messages waiting per queue", labels=["queue"])
        try:
            depths = self.depth_of(self.queues)
        except Exception:  # noqa: BLE001 - a scrape during an outage reports no depth, not an error
            return [family]
        for queue, depth in zip(self.queues, depths, strict=True):
            family.add_metric([queue], depth)
        return [family]


def registry(*extra: Collector) -> CollectorRegistry:
    """What a scrape of this process group reports."""
    if MULTIPROC_VARIABLE in os.environ:
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    else:
        collected = CollectorRegistry(auto_describe=True)
        for collector in list(REGISTRY._collector_to_names):
            collected.register(collector)
    for collector in extra:
        collected.register(collector)
    return collected


def process_exited(pid: int) -> None:
    """Forget a dead process's live gauges (call when a pool process exits)."""
    if MULTIPROC_VARIABLE in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def queue_depth_collectors(broker_url: str, queues: Sequence[str]) -> list[Collector]:
    """A queue-depth collector for a Redis broker (each queue is a list of its name); none for others."""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        return []  # RabbitMQ and the like export their queue depths themselves
    client = redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)

    def depths(names: Sequence[str]) -> list[int]:
        with client.pipeline(transaction=False) as batch:
            for name in names:
                batch.llen(name)
            return [int(n) for n in batch.execute()]

    return [QueueDepth(depths, queues)]
