"""The callback outbox: which ended tasks still owe their receiver a callback, and from when.

A Redis sorted set holds one member per owed callback, scored by the time it may next be tried.
The delivery service claims due members by pushing their score a lease into the future, so a
claim that dies with its process simply falls due again: nothing is lost across restarts of the
worker, the API or the delivery service, nor of Redis with its append-only file. A list carries
wake-ups, so a fresh callback goes out at once instead of at the next poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from server.core.persistence import TERMINAL_LUA_TABLE, TaskPersistence, flatten_fields

# KEYS: task hash, due set, wake list. ARGV: ttl, task id, due score, field/value pairs.
# Ends the task (unless it already ended) and queues its callback, in one step.
_END = f"""
local terminal = {TERMINAL_LUA_TABLE}
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local status = redis.call('HGET', KEYS[1], 'status')
if status and terminal[status] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, 999)
return 1
"""

# KEYS: due set. ARGV: now, lease end, limit. Claims up to `limit` due members.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member) end
return due
"""


class CallbackOutbox:
    def __init__(self, persistence: TaskPersistence) -> None:
        self.persistence = persistence
        self.client = persistence.redis_client
        self.due_key = f"{persistence.root_prefix}callbacks:due"
        self.wake_key = f"{persistence.root_prefix}callbacks:wake"
        self._end = self.client.register_script(_END)
        self._claim = self.client.register_script(_CLAIM)

    def end_task(self, task_id: str, fields: Mapping[str, Any], due_at: float) -> bool:
        """Set the final fields and owe the callback from `due_at`; False if the task had ended."""
        keys = [self.persistence._build_key(task_id), self.due_key, self.wake_key]
        ended = self._end(keys=keys, args=[self.persistence.ttl, task_id, due_at, *flatten_fields(fields)])
        return int(ended) == 1

    def schedule(self, task_id: str, due_at: float, *, wake: bool = False) -> None:
        with self.client.pipeline() as pipe:
            pipe.zadd(self.due_key, {task_id: due_at})
            if wake:
                pipe.lpush(self.wake_key, task_id)
                pipe.ltrim(self.wake_key, 0, 999)
            pipe.execute()

    def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        if limit <= 0:
            return []
        claimed = self._claim(keys=[self.due_key], args=[now, now + lease_s, limit])
        return cast(list[str], claimed)

    def done(self, task_id: str) -> None:
        self.client.zrem(self.due_key, task_id)

    def owed(self, task_id: str) -> float | None:
        score = self.client.zscore(self.due_key, task_id)
        return None if score is None else float(score)

    def wait_for_work(self, timeout_s: float) -> None:
        """Block until something is queued for delivery, or `timeout_s` passed."""
        self.client.blpop([self.wake_key], timeout=timeout_s)
