"""The callback outbox: which ended tasks still owe their receiver a callback, and from when.

A Redis sorted set holds one member per owed callback, scored by the time it may next be claimed.
Whoever claims a member pushes its score a lease into the future, so a claim that dies with its
process simply falls due again: nothing is lost across restarts of the worker, the API or the
delivery service, nor of Redis with its append-only file.

A fresh callback skips the wait for a claim. Ending a task (or replaying its callback) claims it
on behalf of the delivery service and hands it over, body and all, on a list that delivery
processes block on: the callback goes out one Redis round trip after the task ended, and the
delivery service neither reads the record again nor re-encodes the result. A hand-off that no
process takes (none running, or the list trimmed) is still a member of the set, claimed by the
periodic look for due members once its lease lapses.

Every hand-off, hand-off renewal and claim builds the callback inside Redis from the task record,
so all attempts of one callback send the same bytes. `CallbackOutbox` is the side that owes
callbacks (the worker ending a task, the API canceling one or replaying its callback);
`DeliveryQueue` the side that pays them (the delivery service, on an event loop).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio

from server.core.clock import utc_now
from server.core.persistence import TERMINAL_LUA_TABLE, TaskPersistence, flatten_fields, task_key
from server.core.status import CallbackStatus, Outcome
from server.settings import CallbackSettings, Settings

logger = logging.getLogger(__name__)

# Connect, send and read each get `callback.timeout`; a whole attempt at most this many times it.
ATTEMPT_TIMEOUTS = 3
# A claim outlasts the longest attempt by one more timeout and this margin, for the settle.
LEASE_MARGIN_S = 5.0
# Hand-offs waiting on the list, at most; older ones are dropped and claimed when their lease lapses.
MAX_HANDOFFS = 1000


def lease_needed_s(callback: CallbackSettings) -> float:
    """The least of its lease a claim must have left for an attempt to start on it: the longest
    attempt and the margin to record it."""
    return ATTEMPT_TIMEOUTS * callback.timeout + LEASE_MARGIN_S


def claim_lease_s(callback: CallbackSettings) -> float:
    """How long a claim is its holder's alone: what an attempt needs, and one `callback.timeout`
    for a hand-off to wait on the list before it must be renewed."""
    return lease_needed_s(callback) + callback.timeout


# The callback states that owe nothing more, as a Lua table keyed by the decoded status.
_SETTLED = (CallbackStatus.DELIVERED, CallbackStatus.FAILED)
_SETTLED_LUA_TABLE = "{" + ", ".join(f"[{json.dumps(str(status))}] = true" for status in _SETTLED) + "}"

# handoff(key, member, lease): the callback that task hash `key` (due-set member `member`) owes,
# as "lease\nmember\nurl\nstate\nbody", each part but the lease a JSON text (and so free of raw
# newlines); false when it owes none (no record, not ended, no callback URL, or already settled).
# The body is assembled from the record's stored JSON texts, so it is exact and never re-encoded.
_HANDOFF_FUNCTION = """
local terminal = TERMINAL
local settled = SETTLED
local function handoff(key, member, lease)
  local f = redis.call('HMGET', key, 'status', 'callback', 'callbackUrl', 'taskId', 'taskType', 'data', 'error')
  if not (f[1] and terminal[f[1]] and f[3]) then return false end
  local state = f[2] or '{}'
  local ok, decoded = pcall(cjson.decode, state)
  if not (ok and type(decoded) == 'table') then state = '{}' decoded = {} end
  if settled[decoded['status']] then return false end
  local body = '{"taskId":' .. (f[4] or cjson.encode(member)) .. ',"taskType":' .. (f[5] or 'null')
    .. ',"status":' .. f[1] .. ',"data":' .. (f[6] or 'null') .. ',"error":' .. (f[7] or 'null') .. '}'
  return lease .. '\\n' .. cjson.encode(member) .. '\\n' .. f[3] .. '\\n' .. state .. '\\n' .. body
end
""".replace("TERMINAL", TERMINAL_LUA_TABLE).replace("SETTLED", _SETTLED_LUA_TABLE)

# Claims the callback of task ARGV[2] until ARGV[3] in the due set (KEYS[2]) and puts its hand-off
# on the hand-off list (KEYS[3]), keeping the newest MAX_HANDOFFS; nothing when it owes none.
_PUSH_HANDOFF = f"""
local entry = handoff(KEYS[1], ARGV[2], ARGV[3])
if entry then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('RPUSH', KEYS[3], entry)
  redis.call('LTRIM', KEYS[3], -{MAX_HANDOFFS}, -1)
end
"""

# KEYS: task hash, due set, hand-off list, running set. ARGV: ttl, task id, lease end, pairs.
# Ends the task (unless it already ended), claims its callback and hands it over, in one step.
_END = (
    _HANDOFF_FUNCTION
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local status = redis.call('HGET', KEYS[1], 'status')
if status and terminal[status] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[4], KEYS[1])
"""
    + _PUSH_HANDOFF
    + "return 1\n"
)

# KEYS: task hash, due set, hand-off list. ARGV: callback state (JSON), task id, lease end.
# Owes the callback again from now (a replay), superseding any attempt in flight.
_REPLAY = (
    _HANDOFF_FUNCTION
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'callback', ARGV[1])
"""
    + _PUSH_HANDOFF
    + "return 1\n"
)

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

# KEYS: due set. ARGV: now, lease end, limit, task key prefix.
# Claims up to `limit` due members: retries whose time came, and claims whose lease lapsed.
# Members that owe nothing any more (record expired, callback settled) leave the set.
_CLAIM = (
    _HANDOFF_FUNCTION
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, member in ipairs(due) do
  local entry = handoff(ARGV[4] .. member, member, ARGV[2])
  if entry then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
    claimed[#claimed + 1] = entry
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return claimed
"""
)

# KEYS: task hash, due set. ARGV: task id, the hand-off's lease end, new lease end.
# Extends a hand-off that waited on the list, if its claim is still the hand-off's.
_RENEW = (
    _HANDOFF_FUNCTION
    + """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return false end
local entry = handoff(KEYS[1], ARGV[1], ARGV[3])
if entry then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) else redis.call('ZREM', KEYS[2], ARGV[1]) end
return entry
"""
)


@dataclass(frozen=True)
class Handoff:
    """One claimed callback, ready to send: the claim (`lease`, the member's score) and the request."""

    task_id: str
    lease: float
    callback_url: str
    state: dict[str, Any]  # the callback's state in the record when it was claimed
    body: bytes

    @classmethod
    def parse(cls, entry: bytes) -> Handoff:
        lease, member, url, state, body = entry.split(b"\n", 4)
        return cls(json.loads(member), float(lease), json.loads(url), json.loads(state), body)


def _parsed(entry: bytes) -> Handoff | None:
    """The hand-off in `entry`; None, logged, when it is not one of ours (its claim then lapses
    and the callback falls due again), so one bad entry cannot stall delivery."""
    try:
        return Handoff.parse(entry)
    except ValueError:
        logger.error("unreadable entry taken from the outbox: %.80r", entry)
        return None


def owed_keys(key_prefix: str) -> tuple[str, str]:
    """The due set and the hand-off list under the service's key prefix."""
    return f"{key_prefix}callbacks:due", f"{key_prefix}callbacks:handoffs"


class CallbackOutbox:
    def __init__(self, persistence: TaskPersistence) -> None:
        self.persistence = persistence
        self.client = persistence.redis_client
        self.due_key, self.handoff_key = owed_keys(persistence.root_prefix)
        self.lease_s = claim_lease_s(persistence.settings.callback)
        self._end = self.client.register_script(_END)
        self._replay = self.client.register_script(_REPLAY)

    def end_task(self, task_id: str, outcome: Outcome) -> bool:
        """Record how the task ended and hand its callback to the delivery service; False if it had already ended."""
        fields = {
            "status": outcome.status,
            "completedAt": utc_now(),
            "data": outcome.data,
            "error": outcome.error,
            "callback": {"status": CallbackStatus.PENDING, "attempts": 0, "failures": 0},
        }
        keys = [self.persistence._build_key(task_id), self.due_key, self.handoff_key, self.persistence.running_key]
        lease = time.time() + self.lease_s
        ended = self._end(keys=keys, args=[self.persistence.ttl, task_id, lease, *flatten_fields(fields)])
        return int(ended) == 1

    def replay(self, task_id: str, callback_state: Mapping[str, Any], now: float) -> bool:
        """Owe the callback again from `now` with the given state; False when the task is gone."""
        keys = [self.persistence._build_key(task_id), self.due_key, self.handoff_key]
        state = json.dumps(callback_state, separators=(",", ":"))
        return bool(self._replay(keys=keys, args=[state, task_id, now + self.lease_s]))


class DeliveryQueue:
    """The owed callbacks as the delivery service sees them: take hand-offs, claim what is due, settle."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self.client = client
        self.key_prefix = settings.redis.key_prefix
        self.task_key_prefix = task_key(self.key_prefix, "")  # the claim script appends the member
        self.due_key, self.handoff_key = owed_keys(self.key_prefix)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._settle = client.register_script(_SETTLE)

    async def next_handoff(self, timeout_s: float) -> Handoff | None:
        """The oldest hand-off, waiting up to `timeout_s` for one (None: none came)."""
        # BLPOP's timeout 0 means forever; a caller's 0 means "do not wait long".
        popped = await self.client.blpop([self.handoff_key], timeout=max(timeout_s, 0.01))
        return _parsed(cast(list[bytes], popped)[1]) if popped else None

    async def renew(self, handoff: Handoff, lease: float) -> Handoff | None:
        """The hand-off claimed until `lease`, fresh from the record; None when its claim is no longer
        its own (lapsed and claimed elsewhere, or replayed) or the callback is owed no more."""
        keys = [task_key(self.key_prefix, handoff.task_id), self.due_key]
        entry = await self._renew(keys=keys, args=[handoff.task_id, handoff.lease, lease])
        return _parsed(entry) if entry else None

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[Handoff]:
        """Up to `limit` owed callbacks due by `now` (retries, lapsed claims), claimed for `lease_s`."""
        if limit <= 0:
            return []
        args: list[float | str] = [now, now + lease_s, limit, self.task_key_prefix]
        entries = cast(list[bytes], await self._claim(keys=[self.due_key], args=args))
        return [handoff for handoff in map(_parsed, entries) if handoff is not None]

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
