"""Finding tasks whose whole worker died, long before the broker would hand them out again.

Every worker's main process keeps a heartbeat key alive; every task it starts names that worker
as its owner. A task still `processing` whose owner's heartbeat has expired was running in a
worker that is gone: the reaper (in every live worker) marks it reaped and sends it again. With
the Redis broker alone it would wait for the visibility timeout, an hour or more. The dead
worker's own message comes back eventually too; by then the task has ended and is not rerun.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from server.core.persistence import TaskPersistence

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_S = 15  # a worker silent this long is taken for dead
HEARTBEAT_EVERY_S = 5.0
REAP_EVERY_S = 5.0
REPUBLISH_GRACE_S = 600  # a reaped task not started again within this (a lost message) is resent
# After this process (or Redis) was out of touch, heartbeats of live workers may have lapsed too:
# reap only once every live worker has had the time to beat again.
SETTLE_S = HEARTBEAT_TTL_S + HEARTBEAT_EVERY_S

# KEYS: running set. ARGV: heartbeat key prefix, now, grace.
# Returns task key, task type, image key triples (JSON values; the image key false when the record
# names none) of running tasks whose owner has no heartbeat, marking them
# reaped so that only one reaper sends each; forgets entries of tasks no longer processing.
_REAP = """
local orphans = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local status = redis.call('HGET', key, 'status')
  if status ~= '"processing"' then
    redis.call('SREM', KEYS[1], key)
  else
    local owner = redis.call('HGET', key, 'owner')
    local name = owner and string.sub(owner, 2, -2) or ''
    local reaped_at = tonumber(string.match(name, '^reaped@([%d.]+)$') or '')
    local dead
    if reaped_at then
      dead = tonumber(ARGV[2]) - reaped_at > tonumber(ARGV[3])
    else
      dead = name == '' or redis.call('EXISTS', ARGV[1] .. name) == 0
    end
    if dead then
      redis.call('HSET', key, 'owner', '"reaped@' .. ARGV[2] .. '"')
      orphans[#orphans + 1] = key
      orphans[#orphans + 1] = redis.call('HGET', key, 'taskType') or '"pano"'
      orphans[#orphans + 1] = redis.call('HGET', key, 'imageKey') or 'null'
    end
  end
end
return orphans
"""


def heartbeat_key(root_prefix: str, node_name: str) -> str:
    """The key a live worker keeps refreshing; its expiry means the worker is gone."""
    return f"{root_prefix}worker:{node_name}"


def pipelines_key(root_prefix: str, node_name: str) -> str:
    """Where a worker's pool processes report how loading each pipeline went; it lives as the heartbeat does."""
    return heartbeat_key(root_prefix, node_name) + ":pipelines"


def report_pipeline(persistence: TaskPersistence, node_name: str, task_type: str, report: dict[str, Any]) -> None:
    """From a pool process: how loading `task_type`'s pipeline went (kept while the worker beats)."""
    key = pipelines_key(persistence.root_prefix, node_name)
    with persistence.redis_client.pipeline(transaction=True) as batch:
        batch.hset(key, task_type, json.dumps(report, separators=(",", ":")))
        batch.expire(key, HEARTBEAT_TTL_S)
        batch.execute()


def failed_pipelines(reports: dict[str, str]) -> dict[str, str]:
    """Task type → why its pipeline did not load, from a worker's pipeline reports."""
    failed = {}
    for task_type, raw in reports.items():
        report = json.loads(raw)
        if not report.get("loaded"):
            failed[task_type] = str(report.get("error"))
    return failed


def workers_key(root_prefix: str) -> str:
    """A hash of the workers that announced themselves: node name → the queues it consumes."""
    return f"{root_prefix}workers"


@dataclass(frozen=True)
class LiveWorker:
    node_name: str
    queues: tuple[str, ...]
    failed_pipelines: frozenset[str]

    def serves(self, queue: str) -> bool:
        return queue in self.queues and queue not in self.failed_pipelines


def live_workers(client: redis.Redis, root_prefix: str) -> list[LiveWorker]:
    """The workers whose heartbeat is current (forgetting the others), with their queues and health."""
    announced = cast(dict[str, str], client.hgetall(workers_key(root_prefix)))
    nodes = sorted(announced)
    with client.pipeline(transaction=False) as batch:
        for node in nodes:
            batch.exists(heartbeat_key(root_prefix, node))
            batch.hgetall(pipelines_key(root_prefix, node))
        answers = batch.execute()
    live, dead = [], []
    for index, node in enumerate(nodes):
        beating, reports = answers[2 * index], answers[2 * index + 1]
        if not beating:
            dead.append(node)
            continue
        failed = frozenset(failed_pipelines(reports))
        live.append(LiveWorker(node, tuple(json.loads(announced[node]).get("queues", ())), failed))
    if dead:
        client.hdel(workers_key(root_prefix), *dead)
    return live


class Liveness:
    def __init__(self, persistence: TaskPersistence, node_name: str, queues: tuple[str, ...] = ()) -> None:
        self.persistence = persistence
        self.node_name = node_name
        self.heartbeat_key = heartbeat_key(persistence.root_prefix, node_name)
        self.heartbeat_prefix = heartbeat_key(persistence.root_prefix, "")  # the reaper appends owners
        self.pipelines_key = pipelines_key(persistence.root_prefix, node_name)
        self.workers_key = workers_key(persistence.root_prefix)
        self.announcement = json.dumps({"queues": list(queues)})
        self._reap = persistence.redis_client.register_script(_REAP)

    def beat(self) -> dict[str, str]:
        """Refresh the heartbeat and announcement; returns the pipelines this worker failed to load."""
        with self.persistence.redis_client.pipeline(transaction=False) as batch:
            batch.set(self.heartbeat_key, "alive", ex=HEARTBEAT_TTL_S)
            batch.expire(self.pipelines_key, HEARTBEAT_TTL_S)
            batch.hset(self.workers_key, self.node_name, self.announcement)
            batch.hgetall(self.pipelines_key)
            reports: dict[str, str] = batch.execute()[-1]
        return failed_pipelines(reports)

    def stop(self) -> None:
        with self.persistence.redis_client.pipeline(transaction=False) as batch:
            batch.delete(self.heartbeat_key, self.pipelines_key)
            batch.hdel(self.workers_key, self.node_name)
            batch.execute()

    def orphans(self) -> list[tuple[str, str, str | None]]:
        """(task id, task type, image key) of tasks whose worker died; each is handed to one caller only."""
        keys = [self.persistence.running_key]
        flat = cast(
            list[str], self._reap(keys=keys, args=[self.heartbeat_prefix, f"{time.time():.3f}", REPUBLISH_GRACE_S])
        )
        prefix = self.persistence.key_prefix
        return [
            (key.removeprefix(prefix), json.loads(task_type), json.loads(image_key))
            for key, task_type, image_key in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
        ]


def run_liveness(
    liveness: Liveness,
    republish: Callable[[str, str, str | None], None],
    stop_consuming: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Heartbeat and reap until `stop` is set (a daemon thread in each worker's main process).

    A task type whose pipeline failed to load is no longer consumed here (`stop_consuming`): its
    tasks wait in the queue for a worker that can run them instead of failing one by one.
    """
    in_touch_since = time.monotonic()
    next_reap = in_touch_since + SETTLE_S
    stopped: set[str] = set()
    while not stop.is_set():
        try:
            for task_type, error in liveness.beat().items():
                if task_type not in stopped:
                    logger.error(
                        "worker unhealthy: the %s pipeline failed to load (%s); no longer taking %s tasks",
                        task_type, error, task_type,
                    )  # fmt: skip
                    stop_consuming(task_type)
                    stopped.add(task_type)
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + REAP_EVERY_S
                for task_id, task_type, image_key in liveness.orphans():
                    logger.warning("task %s: its worker died while running it; sending it again", task_id)
                    republish(task_id, task_type, image_key)
        except Exception:
            logger.exception("worker heartbeat or reaping failed; retrying")
            next_reap = time.monotonic() + SETTLE_S
        stop.wait(min(HEARTBEAT_EVERY_S, REAP_EVERY_S))
    try:
        liveness.stop()
    except Exception:  # noqa: BLE001 - shutting down; the heartbeat expires by itself anyway
        logger.debug("could not remove the heartbeat", exc_info=True)
