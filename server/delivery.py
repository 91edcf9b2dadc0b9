"""The callback delivery service: sends owed callbacks, retries on schedule, never holds a GPU slot.

Runs as its own process (`main_delivery.py`, started by `make run`); several may run at once.
Fresh callbacks arrive as hand-offs, already claimed for it (`server.core.outbox`); retries and
claims whose holder died are claimed from the outbox once they are due, at most `POLL_S` apart. It
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

from server.core.callback import CallbackSender, DeliveryAttempt
from server.core.clock import iso_utc, utc_now
from server.core.netpolicy import Resolver, system_resolver
from server.core.outbox import DeliveryQueue, Handoff, claim_lease_s, lease_needed_s
from server.core.persistence import async_redis_client
from server.core.retry import next_delay
from server.core.signing import webhook_id
from server.core.status import CallbackStatus
from server.metrics import CALLBACK_ATTEMPTS
from server.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 1.0  # how often retries falling due and lapsed claims are looked for, at most


class DeliveryService:
    def __init__(self, settings: Settings, resolve: Resolver = system_resolver) -> None:
        self.redis = async_redis_client(settings.redis)
        self.queue = DeliveryQueue(self.redis, settings)
        self.sender = CallbackSender(settings, resolve)
        self.schedule = list(settings.callback.retry_schedule)
        self.lease_s = claim_lease_s(settings.callback)
        # A hand-off with less of its lease left than this waited too long on the list to be sent
        # on it: the claim is renewed first, so that the attempt and its record end inside it.
        self.lease_needed_s = lease_needed_s(settings.callback)
        self.concurrency = settings.callback.delivery_concurrency
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the attempts in flight."""
        logger.info("callback delivery running (%d at a time, retry schedule %s s)", self.concurrency, self.schedule)
        next_poll = 0.0
        try:
            while not stop.is_set():
                try:
                    next_poll = await self._start_owed(next_poll)
                except Exception as exc:  # Redis down, or anything else: keep the service alive
                    logger.error("callback delivery: %s: %s; retrying", type(exc).__name__, exc)
                    await _wait(stop, POLL_S)
            if self._in_flight:
                await asyncio.wait(self._in_flight)
        finally:
            await self.sender.close()
            await self.redis.aclose()

    async def _start_owed(self, next_poll: float) -> float:
        """Start the due callbacks when `next_poll` has come, else wait for a hand-off until then;
        returns when to look for due callbacks next."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return next_poll
        now = time.time()
        if now >= next_poll:
            claimed = await self.queue.claim_due(now, self.lease_s, free)
            for handoff in claimed:
                self._start(handoff)
            # A full batch may have left more due: look again as soon as there is room.
            return now if len(claimed) == free else now + POLL_S
        taken = await self.queue.next_handoff(next_poll - now)
        if taken is not None and taken.lease - time.time() < self.lease_needed_s:
            taken = await self.queue.renew(taken, time.time() + self.lease_s)
        if taken is not None:
            self._start(taken)
            # Let the attempt send its request before the next BLPOP goes out (that write wakes
            # Redis, costly on a busy machine): one turn builds the request, and on Python 3.11
            # aiohttp writes the body from a task of its own, which the second turn runs (3.12+
            # writes it at once). An attempt that must open a connection first sends later.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return next_poll

    def _start(self, handoff: Handoff) -> None:
        attempt = asyncio.create_task(self._deliver_logged(handoff))
        self._in_flight.add(attempt)
        attempt.add_done_callback(self._in_flight.discard)

    async def _deliver_logged(self, handoff: Handoff) -> None:
        try:
            await self.deliver(handoff)
        except Exception:
            # The claim's lease runs out and the callback falls due again.
            logger.exception("task %s: callback delivery crashed; it will be tried again", handoff.task_id)

    async def deliver(self, handoff: Handoff) -> None:
        """One attempt at a claimed callback, and what follows from it."""
        task_id = handoff.task_id
        try:
            # One webhook-id per task and tenant, the same on every attempt: receivers dedupe by it.
            attempt = await self.sender.deliver(handoff.callback_url, handoff.body, webhook_id(task_id), task_id)
        except Exception as exc:  # counted as a failed attempt, so the schedule still ends
            logger.exception("task %s: callback attempt crashed", task_id)
            attempt = DeliveryAttempt(False, error=f"internal error: {type(exc).__name__}")
        await self._record(task_id, dict(handoff.state), attempt, handoff.lease)

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
            outcome = "delivered"
            logger.info("task %s: callback delivered (HTTP %s)", task_id, attempt.status_code)
        elif delay is None or (0 <= expires_in < delay):
            state["status"] = CallbackStatus.FAILED
            why = (
                "410 Gone" if attempt.status_code == 410
                else f"retries exhausted after {failures} failures" if delay is None
                else "the task's record expires before the next attempt"
            )  # fmt: skip
            delay = None
            outcome = "failed"
            logger.error("task %s: callback failed for good (%s): %s", task_id, why, attempt.error)
        else:
            state["status"] = CallbackStatus.PENDING
            state["nextAttemptAt"] = iso_utc(now + delay)
            outcome = "retry"
            logger.warning("task %s: callback failed (%s); next attempt in %.0f s", task_id, attempt.error, delay)
        if not await self.queue.settle(task_id, state, None if delay is None else now + delay, lease):
            logger.info("task %s: a newer claim or a replay took over this callback; result not recorded", task_id)
            CALLBACK_ATTEMPTS.labels("superseded").inc()
            return
        CALLBACK_ATTEMPTS.labels(outcome).inc()


async def _wait(stop: asyncio.Event, timeout_s: float) -> None:
    """Sleep `timeout_s`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)
