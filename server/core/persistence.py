"""Task records in Redis: one hash per task, every field a JSON value, kept `task.result_ttl` seconds.

Creation is an atomic claim (a task id is taken once, however many API processes race for it).
Starting (here) and ending (`server.core.outbox`) are Lua scripts that refuse a task that has
already ended, so a duplicate run of a redelivered message can never overwrite a final result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from server.core.status import TERMINAL_STATUSES
from server.settings import RedisSettings, Settings, as_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A Lua table literal whose keys are the JSON-encoded terminal statuses, for the scripts' guards.
TERMINAL_LUA_TABLE = (
    "{" + ", ".join(f"[{json.dumps(json.dumps(str(s)))}] = true" for s in sorted(TERMINAL_STATUSES)) + "}"
)

# KEYS[1] task hash, KEYS[2] (optional) broker queue; ARGV[1] ttl, ARGV[2] queue message or "";
# ARGV[3..] field, value pairs. 1 = created, 0 = taken. With a queue, the message is pushed in the
# same step, so a record never exists without its message (a worker seeing the message before its
# record cannot happen either: nothing runs between the two writes). The push goes first: should
# the hash write fail (out of memory), a message without a record is dropped by the worker, where a
# record without a message would wait forever.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[2] then redis.call('LPUSH', KEYS[2], ARGV[2]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] task hash, KEYS[2] running set; ARGV[1] ttl; ARGV[2] attempts field; ARGV[3..] pairs.
# Unless the task ended, counts an attempt, sets the fields and lists the task as running;
# returns the record either way (empty when there is none), so a worker starts a task in one
# round trip. A record without a status (written the seed's way, by `save_task`) counts as queued.
_START = f"""
local terminal = {TERMINAL_LUA_TABLE}
if redis.call('EXISTS', KEYS[1]) == 0 then return {{}} end
local status = redis.call('HGET', KEYS[1], 'status')
if not (status and terminal[status]) then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], KEYS[1])
end
return redis.call('HGETALL', KEYS[1])
"""


class QueuedMessage(NamedTuple):
    """A broker message as the Redis transport stores it, and the list a worker pops it from."""

    queue_key: str
    payload: str


def _connection(settings: RedisSettings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "db": settings.db,
        "password": settings.password.get_secret_value() if settings.password else None,
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.socket_timeout_s,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def redis_client(settings: RedisSettings, *, db: int | None = None) -> redis.Redis:
    """One pooled, thread-safe client; build it once per process and share it."""
    return redis.Redis(**(_connection(settings) | ({} if db is None else {"db": db})))


def async_redis_client(settings: RedisSettings) -> redis.asyncio.Redis:
    """The same connection settings, for a process that runs on an event loop (the delivery
    service). Its answers stay bytes: callback bodies are sent as Redis holds them, never decoded."""
    return redis.asyncio.Redis(**(_connection(settings) | {"decode_responses": False}))


def task_key(key_prefix: str, task_id: str) -> str:
    """Where a task's record lives (`task_id` may carry a tenant: see `server.auth.task_ref`)."""
    return f"{key_prefix}task:{task_id}"


def _encode(fields: Mapping[str, Any]) -> dict[str, str]:
    return {name: json.dumps(value, separators=(",", ":")) for name, value in fields.items()}


def flatten_fields(fields: Mapping[str, Any]) -> list[str]:
    """Field, value, field, value… as a Lua script's ARGV expects them."""
    return [item for pair in _encode(fields).items() for item in pair]


def decode_fields(raw: Mapping[str, str] | Sequence[str]) -> dict[str, Any]:
    """A record from HGETALL's answer: a mapping, or the flat field, value list a script returns."""
    if not isinstance(raw, Mapping):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    return {name: json.loads(value) for name, value in raw.items()}


class TaskPersistence:
    """Task metadata store (the seed's interface plus an atomic claim and guarded updates)."""

    def __init__(self, config: Settings | Mapping[str, Any], client: redis.Redis | None = None) -> None:
        settings = as_settings(config)
        self.settings = settings
        self.redis_client = client if client is not None else redis_client(settings.redis)
        self.root_prefix = settings.redis.key_prefix
        self.key_prefix = task_key(settings.redis.key_prefix, "")  # task keys are this + the task id
        # Keys of the tasks a worker has started and not ended, for finding those a dead worker left.
        self.running_key = f"{settings.redis.key_prefix}running"
        self.ttl = settings.task.result_ttl
        self._claim = self.redis_client.register_script(_CLAIM)
        self._start = self.redis_client.register_script(_START)

    def _build_key(self, task_id: str) -> str:
        return task_key(self.root_prefix, task_id)

    def save_task(self, task_id: str, metadata: Mapping[str, Any]) -> bool:
        """Write (replace) a record with the TTL; False when Redis failed (the seed's contract)."""
        key = self._build_key(task_id)
        try:
            with self.redis_client.pipeline() as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=cast(dict[Any, Any], _encode(metadata)))
                pipe.expire(key, self.ttl)
                pipe.execute()
        except redis.RedisError:
            logger.exception("failed to save task %s", task_id)
            return False
        return True

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self.redis_client.hgetall(self._build_key(task_id)))
        return decode_fields(raw) if raw else None

    def task_exists(self, task_id: str) -> bool:
        return bool(self.redis_client.exists(self._build_key(task_id)))

    def delete_task(self, task_id: str) -> bool:
        return bool(self.redis_client.delete(self._build_key(task_id)))

    def claim_task(self, task_id: str, metadata: Mapping[str, Any], queued: QueuedMessage | None = None) -> bool:
        """Create the record unless the id is taken; exactly one of racing callers gets True.

        `queued`: a broker message to push in the same step (the broker being this Redis), only
        when the record is created.
        """
        keys = [self._build_key(task_id)]
        if queued is not None:
            keys.append(queued.queue_key)
        message = queued.payload if queued is not None else ""
        return bool(self._claim(keys=keys, args=[self.ttl, message, *flatten_fields(metadata)]))

    def _start_call(self, task_id: str, fields: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        """The start script's keys and arguments."""
        return [self._build_key(task_id), self.running_key], [self.ttl, "attempts", *flatten_fields(fields)]

    def start_attempt(self, task_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Count an attempt (`attempts`) and set `fields` unless the task ended; the record afterwards, or None.

        A record whose status is terminal comes back unchanged: the caller must not run it.
        """
        keys, args = self._start_call(task_id, fields)
        flat = cast(list[str], self._start(keys=keys, args=args))
        return decode_fields(flat) if flat else None

    def start_attempt_during(
        self, task_id: str, fields: Mapping[str, Any], work: Callable[[], T]
    ) -> tuple[dict[str, Any] | None, T]:
        """`start_attempt`, with `work()` done while Redis runs it: the worker reads and decodes the
        image in the round trip's time instead of after it. Both results come back; `work` should
        not raise (an exception from it drops the connection, the attempt having been counted).

        A failure to send falls back to `start_attempt` and its retries (nothing ran); a failure
        to read the answer raises, as the attempt may have been counted already.
        """
        keys, args = self._start_call(task_id, fields)
        pool = self.redis_client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command("EVALSHA", self._start.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        except (redis.ConnectionError, redis.TimeoutError):  # redis-py has dropped the connection
            pool.release(connection)
            return self.start_attempt(task_id, fields), work()
        try:
            done = work()
            answer = self.redis_client.parse_response(connection, "EVALSHA")  # type: ignore[no-untyped-call]
        except NoScriptError:  # Redis lost its script cache (a restart): nothing ran
            answer = None
        except BaseException:
            # Whatever broke off, the connection may still hold an unread answer: never reuse it.
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)
        if answer is None:
            return self.start_attempt(task_id, fields), done  # loads the script, then runs it
        flat = cast(list[str], answer)
        return (decode_fields(flat) if flat else None), done

    def close(self) -> None:
        self.redis_client.close()

    def __enter__(self) -> TaskPersistence:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
