"""Celery tasks: thin wrappers that hand a task id to the process's `TaskProcessor`."""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject, TimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from pipelines import build_pipelines
from server.core.liveness import Liveness, run_liveness
from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.processing import TaskProcessor
from server.core.status import TIMED_OUT
from server.core.storage import LocalStorage, discard_image
from server.settings import get_settings
from server.worker import ANALYZE_TASK_NAME, celery_app, enqueue_analysis

logger = logging.getLogger(__name__)

# Pause before handing a message back while Redis is unreachable, so it does not spin.
REDIS_OUTAGE_PAUSE_S = 1.0


@cache
def processor() -> TaskProcessor:
    """This process's clients and loaded pipelines, built once (after the fork, never in the parent)."""
    settings = get_settings()
    pipelines = build_pipelines(settings.pipelines.mock_delay_s, settings.worker.queues)
    for pipeline in pipelines.values():
        pipeline.load()
    logger.info("pipelines loaded: %s", ", ".join(sorted(pipelines)))
    return TaskProcessor(
        TaskPersistence(settings),
        LocalStorage(settings.api.upload_dir),
        pipelines,
        max_attempts=settings.worker.max_attempts,
        keep_images=settings.storage.keep_images,
    )


@worker_process_init.connect
def _prepare_pool_process(**_: Any) -> None:
    processor()


_liveness_stop = threading.Event()


@worker_ready.connect
def _start_liveness(sender: Any = None, **_: Any) -> None:
    """In the worker's main process: heartbeat, and resend tasks of workers that died."""
    settings = get_settings()
    liveness = Liveness(TaskPersistence(settings), str(getattr(sender, "hostname", "") or ""))
    thread = threading.Thread(
        target=run_liveness, args=(liveness, enqueue_analysis, _liveness_stop), name="liveness", daemon=True
    )
    thread.start()


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    _liveness_stop.set()


def _end_after_hard_time_limit(task_id: str) -> None:
    """The pool process running the task was killed: record 12004 (which queues the callback)."""
    settings = get_settings()
    with TaskPersistence(settings) as persistence:
        record = persistence.get_task(task_id)
        if record is None or not CallbackOutbox(persistence).end_task(task_id, TIMED_OUT):
            return
    logger.error("task %s hit the hard time limit; ended with 12004", task_id)
    if not settings.storage.keep_images:
        discard_image(LocalStorage(settings.api.upload_dir), record)


class AnalyzeTask(Task[Any, None]):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # For a hard time limit Celery calls this in the worker's main process, the pool process
        # being dead; the message is then acknowledged, so this is the task's last chance.
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                _end_after_hard_time_limit(str(args[0]))
            except Exception:
                logger.exception("task %s: could not record its hard time limit", args[0])


def _requeue_on_redis_outage(task_id: str, exc: redis.RedisError) -> Reject:
    logger.error("task %s: Redis unavailable (%s); handing the message back", task_id, exc)
    time.sleep(REDIS_OUTAGE_PAUSE_S)
    return Reject(requeue=True)


@celery_app.task(name=ANALYZE_TASK_NAME, base=AnalyzeTask, bind=True)
def analyze_task(self: AnalyzeTask, task_id: str) -> None:
    """Analyze one accepted task; its outcome goes to the task record and the callback."""
    try:
        processor().process(task_id, owner=self.request.hostname or "")
    except redis.RedisError as exc:
        raise _requeue_on_redis_outage(task_id, exc) from exc
