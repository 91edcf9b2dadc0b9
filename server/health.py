"""Health for people and orchestrators: is Redis there, is the broker there, who serves each queue.

`/livez` asks nothing of anyone (the process answers); `/readyz` needs Redis and the broker (a
request could be accepted); `/health` adds the workers: each queue needs at least one live worker
whose pipeline for it loaded. Checks run off the event loop and are cached for `CACHE_S`, so a
load balancer polling every second costs a few Redis round trips per interval, not per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from server.core.liveness import live_workers

CACHE_S = 2.0


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, Any] = field(default_factory=dict)
    ready: bool = False  # Redis and broker
    healthy: bool = False  # and every queue served


def _timed(probe: Callable[[], object]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is its check failing
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


class HealthMonitor:
    """Blocking checks with a short cache; call `report()` from a worker thread."""

    def __init__(
        self,
        client: redis.Redis,
        key_prefix: str,
        ping_broker: Callable[[], None],
        queues: Sequence[str],
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.ping_broker = ping_broker
        self.queues = tuple(queues)
        self._lock = threading.Lock()
        self._cached: tuple[float, HealthReport] | None = None

    def report(self) -> HealthReport:
        with self._lock:  # concurrent requests share one round of checks
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > CACHE_S:
                self._cached = (now, self._check())
            return self._cached[1]

    def _check(self) -> HealthReport:
        redis_check = _timed(self.client.ping)
        broker_check = _timed(self.ping_broker)
        checks: dict[str, Any] = {"redis": redis_check, "broker": broker_check}
        workers: dict[str, Any] = {}
        if redis_check["ok"]:
            try:
                live = live_workers(self.client, self.key_prefix)
            except redis.RedisError as exc:
                live, redis_check = [], {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
                checks["redis"] = redis_check
            for queue in self.queues:
                serving = [w.node_name for w in live if w.serves(queue)]
                unhealthy = [w.node_name for w in live if queue in w.failed_pipelines]
                workers[queue] = {"ok": bool(serving), "live": len(serving), "pipelineFailed": len(unhealthy)}
        else:
            workers = {queue: {"ok": False, "live": None} for queue in self.queues}
        checks["workers"] = workers
        ready = bool(redis_check["ok"] and broker_check["ok"])
        return HealthReport(checks, ready, ready and all(q["ok"] for q in workers.values()))
