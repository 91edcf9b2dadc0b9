"""The callback delivery service: sends owed callbacks, retries on schedule, never holds a GPU slot.

Runs as its own process (`main_delivery.py`, started by `make run`); several may run at once.
It claims due callbacks from the outbox (a lease, so a dead process's claims fall due again),
sends up to `callback.delivery_concurrency` at once on one event loop, and records the outcome:
delivered, retry at a time from `callback.retry_schedule` (or the receiver's Retry-After), or
failed (410 Gone, or the schedule is exhausted). Failed callbacks stay replayable through the API
until the task expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from server.core.callback import ATTEMPT_TIMEOUTS, CallbackSender, DeliveryAttempt
from server.core.clock import iso_utc, utc_now
from server.core.netpolicy import Resolver, system_resolver
from server.core.outbox import DeliveryQueue
from server.core.persistence import async_redis_client, decode_fields
from server.core.retry import next_delay
from server.core.signing import webhook_id
from server.core.status import TERMINAL_STATUSES, CallbackStatus
from server.metrics import CALLBACK_ATTEMPTS
from server.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 1.0  # how often not-yet-due retries are looked for, at most
# A claim lasts longer than an attempt can: connect, write and read each get callback.timeout.
LEASE_TIMEOUTS = ATTEMPT_TIMEOUTS + 1
LEASE_MARGIN_S = 5.0


def callback_payload(task_id: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskId": record.get("taskId", task_id),  # the client's id; `task_id` may carry a tenant
        "taskType": record.get("taskType"),
        "status": record.get("status"),
        "data": record.get("data"),
        "error": record.get("error"),
    }


class DeliveryService:
    def __init__(self, settings: Settings, resolve: Resolver = system_resolver) -> None:
        self.redis = async_redis_client(settings.redis)
        self.queue = DeliveryQueue(self.redis, settings)
        self.sender = CallbackSender(settings, resolve)
        self.schedule = list(settings.callback.retry_schedule)
        self.lease_s = LEASE_TIMEOUTS * settings.callback.timeout + LEASE_MARGIN_S
        self.concurrency = settings.callback.delivery_concurrency
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the attempts in flight."""
        logger.info("callback delivery running (%d at a time, retry schedule %s s)", self.concurrency, self.schedule)
        try:
            while not stop.is_set():
                try:
                    await self._claim_and_start()
                except Exception as exc:  # Redis down, or anything else: keep the service alive
                    logger.error("callback delivery: %s: %s; retrying", type(exc).__name__, exc)
                    await _wait(stop, POLL_S)
            if self._in_flight:
                await asyncio.wait(self._in_flight)
        finally:
            await self.sender.close()
            await self.redis.aclose()

    async def _claim_and_start(self) -> None:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return
        lease, claimed = await self.queue.claim_due(time.time(), self.lease_s, free)
        for task_id, raw_record in claimed:
            attempt = asyncio.create_task(self._deliver_logged(task_id, raw_record, lease))
            self._in_flight.add(attempt)
            attempt.add_done_callback(self._in_flight.discard)
        if len(claimed) < free:
            # Everything due is claimed and the claim emptied the wake-up list, so wait for the
            # next wake-up (or retries falling due) instead of asking again.
            await self.queue.wait_for_work(POLL_S)

    async def _deliver_logged(self, task_id: str, raw_record: list[str], lease: float) -> None:
        try:
            await self.deliver(task_id, decode_fields(raw_record) if raw_record else None, lease)
        except Exception:
            # The claim's lease runs out and the callback falls due again.
            logger.exception("task %s: callback delivery crashed; it will be tried again", task_id)

    async def deliver(self, task_id: str, record: dict[str, Any] | None, lease: float) -> None:
        """One attempt at the task's callback (its record as claimed), and what follows from it."""
        if record is None:
            logger.error("task %s: its record expired before its callback was delivered; dropping it", task_id)
            await self.queue.done(task_id)
            return
        if record.get("status") not in TERMINAL_STATUSES:
            await self.queue.done(task_id)  # replaced by a new task under the same id
            return
        state = dict(record.get("callback") or {})
        if state.get("status") in (CallbackStatus.DELIVERED, CallbackStatus.FAILED):
            await self.queue.done(task_id)
            return
        try:
            # One webhook-id per task and tenant, the same on every attempt: receivers dedupe by it.
            payload = callback_payload(task_id, record)
            attempt = await self.sender.deliver(record["callbackUrl"], payload, webhook_id(task_id))
        except Exception as exc:  # counted as a failed attempt, so the schedule still ends
            logger.exception("task %s: callback attempt crashed", task_id)
            attempt = DeliveryAttempt(False, error=f"internal error: {type(exc).__name__}")
        await self._record(task_id, state, attempt, lease)

    async def _record(self, task_id: str, state: dict[str, Any], attempt: DeliveryAttempt, lease: float) -> None:
        now = time.time()
        failures = 0 if attempt.delivered else int(state.get("failures", 0)) + 1
        state.update(
            attempts=int(state.get("attempts", 0)) + 1,
            failures=failures,
            lastAttemptAt=utc_now(),
            lastStatusCode=attempt.status_code,
            lastError=attempt.error,
            nextAttemptAt=None,
        )
        delay = None if attempt.delivered or attempt.status_code == 410 else next_delay(
            failures, self.schedule, attempt.retry_after_s
        )  # fmt: skip
        expires_in = await self.queue.seconds_to_expiry(task_id) if delay else -1
        if attempt.delivered:
            state["status"] = CallbackStatus.DELIVERED
            logger.info("task %s: callback delivered (HTTP %s)", task_id, attempt.status_code)
        elif delay is None or (0 <= expires_in < delay):
            state["status"] = CallbackStatus.FAILED
            why = (
                "410 Gone" if attempt.status_code == 410
                else f"retries exhausted after {failures} failures" if delay is None
                else "the task's record expires before the next attempt"
            )  # fmt: skip
            delay = None
            logger.error("task %s: callback failed for good (%s): %s", task_id, why, attempt.error)
        else:
            state["status"] = CallbackStatus.PENDING
            state["nextAttemptAt"] = iso_utc(now + delay)
            logger.warning("task %s: callback failed (%s); next attempt in %.0f s", task_id, attempt.error, delay)
        if not await self.queue.settle(task_id, state, None if delay is None else now + delay, lease):
            logger.info("task %s: a newer claim or a replay took over this callback; result not recorded", task_id)
            CALLBACK_ATTEMPTS.labels("superseded").inc()
            return
        outcome = {CallbackStatus.DELIVERED: "delivered", CallbackStatus.FAILED: "failed"}.get(state["status"], "retry")
        CALLBACK_ATTEMPTS.labels(outcome).inc()


async def _wait(stop: asyncio.Event, timeout_s: float) -> None:
    """Sleep `timeout_s`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)
