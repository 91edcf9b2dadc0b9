"""Celery tasks: thin wrappers that hand a task id to the process's `TaskProcessor`."""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import cache, partial
from typing import Any

import redis
from celery import Task
from celery.app.task import Context
from celery.exceptions import Reject, TimeLimitExceeded
from celery.signals import celeryd_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from prometheus_client import start_http_server

from server.core.liveness import Liveness, report_pipeline, run_liveness
from server.core.outbox import CallbackOutbox
from server.core.persistence import TaskPersistence
from server.core.pipeline_loading import load_pipelines
from server.core.processing import ImageStoreUnavailable, PipelineUnavailable, TaskProcessor
from server.core.status import TIMED_OUT
from server.core.storage import ImageStorage, discard_image, make_storage
from server.metrics import process_exited
from server.metrics import registry as metrics_registry
from server.settings import get_settings
from server.worker import ANALYZE_TASK_NAME, RESENT_HEADER, celery_app, enqueue_analysis

logger = logging.getLogger(__name__)

# Pause before handing a message back (Redis unreachable, pipeline not loaded), so it does not spin.
REQUEUE_PAUSE_S = 1.0

# The worker's node name, learnt in the main process before the pool forks.
_node_name = ""


@celeryd_init.connect
def _remember_node_name(sender: Any = None, **_: Any) -> None:
    global _node_name
    _node_name = str(sender or "")


@cache
def processor() -> TaskProcessor:
    """This process's clients and loaded pipelines, built once (after the fork, never in the parent)."""
    settings = get_settings()
    persistence = TaskPersistence(settings)
    pipelines, reports = load_pipelines(settings.pipelines, settings.worker.queues)
    for report in reports:
        details = {"loaded": report.loaded, "kind": report.kind, "seconds": round(report.seconds, 3)}
        try:
            report_pipeline(persistence, _node_name, report.task_type, details | {"error": report.error})
        except redis.RedisError:
            logger.exception("could not report the %s pipeline's state", report.task_type)
    return TaskProcessor(
        persistence,
        make_storage(settings),
        pipelines,
        max_attempts=settings.worker.max_attempts,
        keep_images=settings.storage.keep_images,
    )


@worker_process_init.connect
def _prepare_pool_process(**_: Any) -> None:
    processor()


@worker_process_shutdown.connect
def _forget_pool_process(pid: int | None = None, **_: Any) -> None:
    process_exited(pid or os.getpid())


_liveness_stop = threading.Event()


@worker_ready.connect
def _start_liveness(**_: Any) -> None:
    """In the worker's main process: heartbeat, and resend tasks of workers that died."""
    settings = get_settings()
    node_name = _node_name
    if settings.metrics.worker_port:
        # The pool processes' metrics, added up, on a port of the worker's main process.
        start_http_server(settings.metrics.worker_port, registry=metrics_registry())
    liveness = Liveness(_main_process_persistence(), node_name, tuple(settings.worker.queues))

    def stop_consuming(queue: str) -> None:
        celery_app.control.cancel_consumer(queue, destination=[node_name])

    thread = threading.Thread(
        target=run_liveness,
        args=(liveness, partial(enqueue_analysis, resent=True), stop_consuming, _liveness_stop),
        name="liveness",
        daemon=True,
    )
    thread.start()


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    _liveness_stop.set()


@cache
def _main_process_persistence() -> TaskPersistence:
    """The worker main process's one task store client (liveness, and the hard-time-limit path)."""
    return TaskPersistence(get_settings())


@cache
def _main_process_clients() -> tuple[CallbackOutbox, ImageStorage | None]:
    """The worker main process's own outbox and image store (None when images are kept), built on
    first use: it ends a task itself only when a hard time limit killed the pool process running it."""
    settings = get_settings()
    storage = None if settings.storage.keep_images else make_storage(settings)
    return CallbackOutbox(_main_process_persistence()), storage


def _end_after_hard_time_limit(task_id: str) -> None:
    """The pool process running the task was killed: record 12004 (which queues the callback)."""
    outbox, storage = _main_process_clients()
    record = outbox.persistence.get_task(task_id)
    if record is None or not outbox.end_task(task_id, TIMED_OUT):
        return
    logger.error("task %s hit the hard time limit; ended with 12004", task_id)
    if storage is not None:
        discard_image(storage, record)


class AnalyzeTask(Task[Any, None]):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # For a hard time limit Celery calls this in the worker's main process, the pool process
        # being dead; the message is then acknowledged, so this is the task's last chance.
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                _end_after_hard_time_limit(str(args[0]))
            except Exception:
                logger.exception("task %s: could not record its hard time limit", args[0])


def _hand_back(task_id: str, why: str) -> Reject:
    logger.error("task %s: %s; handing the message back", task_id, why)
    time.sleep(REQUEUE_PAUSE_S)
    return Reject(requeue=True)


def ran_before(request: Context) -> bool:
    """Whether a message may have been given to a run already: redelivered by the broker (its run's
    process died, or the message was handed back) or sent again for a dead worker (`resent`)."""
    return bool((request.delivery_info or {}).get("redelivered") or getattr(request, RESENT_HEADER, False))


@celery_app.task(name=ANALYZE_TASK_NAME, base=AnalyzeTask, bind=True)
def analyze_task(self: AnalyzeTask, task_id: str, image_key: str | None = None) -> None:
    """Analyze one accepted task; its outcome goes to the task record and the callback."""
    # The queue a message came from is its task type (one routing key per queue).
    queue = (self.request.delivery_info or {}).get("routing_key")
    # A message that ran before may be one whose image crashes the process reading it: its record,
    # and with it the attempt limit, comes first. A first run reads the image meanwhile.
    prefetch = not ran_before(self.request)
    if not prefetch:
        logger.info("task %s was delivered before; reading its record before its image", task_id)
    owner = self.request.hostname or ""
    try:
        processor().process(task_id, owner=owner, task_type=queue, image_key=image_key, prefetch=prefetch)
    except redis.RedisError as exc:
        raise _hand_back(task_id, f"Redis unavailable ({exc})") from exc
    except PipelineUnavailable as exc:
        raise _hand_back(task_id, f"the {exc} pipeline is not loaded in this worker") from exc
    except ImageStoreUnavailable as exc:
        raise _hand_back(task_id, f"the image store is unavailable ({exc})") from exc
