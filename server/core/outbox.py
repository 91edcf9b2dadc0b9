"""The callback outbox: which ended tasks still owe their receiver a callback, and from when.

A Redis sorted set holds one member per owed callback, scored by the time it may next be tried.
The delivery service claims due members by pushing their score a lease into the future, so a
claim that dies with its process simply falls due again: nothing is lost across restarts of the
worker, the API or the delivery service, nor of Redis with its append-only file. A list carries
wake-ups, so a fresh callback goes out at once instead of at the next poll.

`CallbackOutbox` is the side that owes callbacks (the worker ending a task, the API replaying
one); `DeliveryQueue` the side that pays them (the delivery service, on an event loop).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio

from server.core.clock import utc_now
from server.core.persistence import TERMINAL_LUA_TABLE, TaskPersistence, flatten_fields, task_key
from server.core.status import CallbackStatus, Outcome
from server.settings import Settings

# KEYS: task hash, due set, wake list, running set. ARGV: ttl, task id, due score, pairs.
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
redis.call('SREM', KEYS[4], KEYS[1])
return 1
"""

# KEYS: task hash, due set. ARGV: task id, callback state (JSON), next due time or '', lease.
# Records an attempt's outcome and reschedules or forgets the callback, in one step — only if
# the claim is still this attempt's (its lease score unchanged): an attempt whose lease ran out
# and was claimed again, or that a replay overtook, must not overwrite the newer state.
_SETTLE = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[4]) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'callback', ARGV[2]) end
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[1]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end
return 1
"""

# KEYS: task hash, due set, wake list. ARGV: task id, callback state (JSON), now.
# Owes the callback again from now (a replay), superseding any attempt in flight.
_REPLAY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'callback', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], 0, 999)
return 1
"""

# KEYS: due set, wake list. ARGV: now, lease end, limit, task key prefix.
# Claims up to `limit` due members and returns each with its task record (member, fields…).
# Emptying the wake list is safe: these claims answer every wake-up pushed before them.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
redis.call('DEL', KEYS[2])
local claimed = {}
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
  claimed[#claimed + 1] = member
  claimed[#claimed + 1] = redis.call('HGETALL', ARGV[4] .. member)
end
return claimed
"""


def _owed_keys(key_prefix: str) -> tuple[str, str]:
    """The due set and the wake list under the service's key prefix."""
    return f"{key_prefix}callbacks:due", f"{key_prefix}callbacks:wake"


class CallbackOutbox:
    def __init__(self, persistence: TaskPersistence) -> None:
        self.persistence = persistence
        self.client = persistence.redis_client
        self.due_key, self.wake_key = _owed_keys(persistence.root_prefix)
        self._end = self.client.register_script(_END)
        self._replay = self.client.register_script(_REPLAY)

    def end_task(self, task_id: str, outcome: Outcome) -> bool:
        """Record how the task ended and owe its callback from now; False if it had already ended."""
        fields = {
            "status": outcome.status,
            "completedAt": utc_now(),
            "data": outcome.data,
            "error": outcome.error,
            "callback": {"status": CallbackStatus.PENDING, "attempts": 0, "failures": 0},
        }
        keys = [self.persistence._build_key(task_id), self.due_key, self.wake_key, self.persistence.running_key]
        ended = self._end(keys=keys, args=[self.persistence.ttl, task_id, time.time(), *flatten_fields(fields)])
        return int(ended) == 1

    def replay(self, task_id: str, callback_state: Mapping[str, Any], now: float) -> bool:
        """Owe the callback again from `now` with the given state; False when the task is gone."""
        keys = [self.persistence._build_key(task_id), self.due_key, self.wake_key]
        state = json.dumps(callback_state, separators=(",", ":"))
        return bool(self._replay(keys=keys, args=[task_id, state, now]))


class DeliveryQueue:
    """The owed callbacks as the delivery service sees them: claim what is due, settle each attempt."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self.client = client
        self.key_prefix = settings.redis.key_prefix
        self.task_key_prefix = task_key(self.key_prefix, "")  # the claim script appends the member
        self.due_key, self.wake_key = _owed_keys(self.key_prefix)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)

    async def claim_due(self, now: float, lease_s: float, limit: int) -> tuple[float, list[tuple[str, list[str]]]]:
        """Up to `limit` owed callbacks now due, leased until the returned time, with raw records."""
        if limit <= 0:
            return 0.0, []
        lease = now + lease_s
        args: list[float | str] = [now, lease, limit, self.task_key_prefix]
        flat = cast(list[Any], await self._claim(keys=[self.due_key, self.wake_key], args=args))
        return lease, list(zip(flat[::2], flat[1::2], strict=True))

    async def settle(
        self, task_id: str, callback_state: Mapping[str, Any], next_due_at: float | None, lease: float
    ) -> bool:
        """Store the callback's state and owe it again from `next_due_at` (None: no more).

        False, changing nothing, when the claim `lease` is no longer this attempt's.
        """
        keys = [task_key(self.key_prefix, task_id), self.due_key]
        state = json.dumps(callback_state, separators=(",", ":"))
        args = [task_id, state, "" if next_due_at is None else next_due_at, lease]
        return bool(await self._settle(keys=keys, args=args))

    async def seconds_to_expiry(self, task_id: str) -> int:
        """How long the task's record has left (negative: no record, or no expiry)."""
        return int(await self.client.ttl(task_key(self.key_prefix, task_id)))

    async def done(self, task_id: str) -> None:
        await self.client.zrem(self.due_key, task_id)

    async def wait_for_work(self, timeout_s: float) -> None:
        """Block until something is queued for delivery, or `timeout_s` passed."""
        await self.client.blpop([self.wake_key], timeout=timeout_s)
