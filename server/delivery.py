"""The callback delivery service: sends owed callbacks, retries on schedule, never holds a GPU slot.

Runs as its own process (`main_delivery.py`, started by `make run`); several may run at once.
Each loop claims due callbacks from the outbox (a lease, so a dead process's claims fall due
again), sends them from a thread pool, and records the outcome: delivered, retry at a time from
`callback.retry_schedule` (or the receiver's Retry-After), or failed (410 Gone, or the schedule is
exhausted). Failed callbacks stay replayable through the API until the task expires.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import redis

from server.core.callback import CallbackManager, DeliveryAttempt
from server.core.clock import utc_now
from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.retry import next_delay
from server.core.status import CallbackStatus, TaskStatus
from server.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 1.0  # how often not-yet-due retries are looked for, at most
LEASE_MARGIN_S = 5.0  # a claim lasts twice the attempt's timeout plus this


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def callback_payload(task_id: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "taskType": record.get("taskType"),
        "status": record.get("status"),
        "data": record.get("data"),
        "error": record.get("error"),
    }


class DeliveryService:
    def __init__(self, settings: Settings) -> None:
        self.persistence = TaskPersistence(settings)
        self.outbox = CallbackOutbox(self.persistence)
        self.callbacks = CallbackManager(settings)
        self.schedule = list(settings.callback.retry_schedule)
        self.lease_s = 2 * settings.callback.timeout + LEASE_MARGIN_S
        self.concurrency = settings.callback.delivery_concurrency
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="callback")
        self._in_flight = 0
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then finish the attempts in flight."""
        logger.info("callback delivery running (%d at a time, retry schedule %s s)", self.concurrency, self.schedule)
        while not stop.is_set():
            try:
                claimed = self.outbox.claim_due(time.time(), self.lease_s, self._free_slots())
                for task_id, record in claimed:
                    self._start(task_id, record)
                if not claimed:
                    self.outbox.wait_for_work(POLL_S)
            except redis.RedisError as exc:
                logger.error("callback delivery: Redis unavailable (%s); retrying", exc)
                stop.wait(POLL_S)
        self._pool.shutdown(wait=True)
        self.callbacks.close()
        self.persistence.close()

    def _free_slots(self) -> int:
        with self._lock:
            return self.concurrency - self._in_flight

    def _start(self, task_id: str, record: dict[str, Any] | None) -> None:
        with self._lock:
            self._in_flight += 1
        self._pool.submit(self._deliver_then_release, task_id, record)

    def _deliver_then_release(self, task_id: str, record: dict[str, Any] | None) -> None:
        try:
            self.deliver(task_id, record)
        except Exception:
            # The claim's lease runs out and the callback falls due again.
            logger.exception("task %s: callback delivery crashed; it will be retried", task_id)
        finally:
            with self._lock:
                self._in_flight -= 1

    def deliver(self, task_id: str, record: dict[str, Any] | None) -> None:
        """One attempt at the task's callback (its record as claimed), and what follows from it."""
        if record is None or not TaskStatus(record.get("status", TaskStatus.QUEUED)).is_terminal():
            self.outbox.done(task_id)  # expired, or replaced by a new task under the same id
            return
        state = dict(record.get("callback") or {})
        if state.get("status") in (CallbackStatus.DELIVERED, CallbackStatus.FAILED):
            self.outbox.done(task_id)
            return
        attempt = self.callbacks.deliver(record["callbackUrl"], callback_payload(task_id, record))
        self._record(task_id, record, state, attempt)

    def _record(self, task_id: str, record: dict[str, Any], state: dict[str, Any], attempt: DeliveryAttempt) -> None:
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
        if attempt.delivered:
            state["status"] = CallbackStatus.DELIVERED
            logger.info("task %s: callback delivered (HTTP %s)", task_id, attempt.status_code)
        elif delay is None:
            state["status"] = CallbackStatus.FAILED
            why = "410 Gone" if attempt.status_code == 410 else f"retries exhausted after {failures} failures"
            logger.error("task %s: callback failed for good (%s): %s", task_id, why, attempt.error)
        else:
            state["status"] = CallbackStatus.PENDING
            state["nextAttemptAt"] = _iso(now + delay)
            logger.warning("task %s: callback failed (%s); next attempt in %.0f s", task_id, attempt.error, delay)
        self.outbox.settle(task_id, state, None if delay is None else now + delay)
