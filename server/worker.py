"""The Celery application: broker, queues and the at-least-once execution settings.

The configuration is attached as a lazy default, so importing this module reads no file; the
settings are read the first time Celery needs them, in whichever process that is.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from server.redis_transport import use_for_redis_urls
from server.settings import TASK_TYPES, Settings, get_settings

ANALYZE_TASK_NAME = "server.tasks.analyze_task"
# Message header of a task sent again for a worker that died; Celery puts it in the task's request.
RESENT_HEADER = "xray_resent"


def celery_config(settings: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": settings.celery.visibility_timeout_s,
        "socket_timeout": settings.redis.socket_timeout_s,
        "socket_connect_timeout": settings.redis.socket_timeout_s,
    }
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.celery.result_backend,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # One exchange and routing key per queue: a pano message can only ever land in `pano`.
        "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in TASK_TYPES],
        "task_default_queue": TASK_TYPES[0],
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # The service keeps its own task records; Celery's result store would be a second copy.
        "task_ignore_result": True,
        # At-least-once: a message is acknowledged after its task ran, a task whose process died
        # goes back to the queue, and each process holds one message at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.worker.task_soft_time_limit_s,
        "task_time_limit": settings.worker.task_time_limit_s,
        # A publish to a broker that is down fails within about a second instead of hanging the API.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        "worker_soft_shutdown_timeout": settings.worker.shutdown_grace_s,
        # Pool processes load their pipelines before reporting up; Celery's 4 s default would
        # kill one loading a real model.
        "worker_proc_alive_timeout": settings.worker.pipeline_load_timeout_s,
        "worker_hijack_root_logger": False,
        "worker_disable_rate_limits": True,
    }


# Plain Redis brokers get kombu's transport minus a client built per command, whichever way their
# URL was given; TLS and other brokers keep the transport their URL names.
use_for_redis_urls()


def create_celery_app() -> Celery:
    app = Celery("xray_inference", include=["server.tasks"])
    app.add_defaults(lambda: celery_config(get_settings()))
    return app


celery_app = create_celery_app()


def analyze_call(task_id: str, image_key: str | None) -> dict[str, Any]:
    """The arguments of one `analyze_task` message, as both `send_task` and Celery's message builder
    take them. `image_key` lets a worker read the image while it starts the task, and delete it
    when it finds the record expired (the task waited in the queue past `task.result_ttl`). Given
    argsrepr and kwargsrepr, Celery skips its generic (and comparatively slow) repr of the arguments."""
    kwargs = {"image_key": image_key} if image_key else {}
    return {"args": (task_id,), "kwargs": kwargs, "argsrepr": repr([task_id]), "kwargsrepr": repr(kwargs)}


def enqueue_analysis(
    task_id: str, task_type: str, image_key: str | None = None, app: Celery = celery_app, *, resent: bool = False
) -> None:
    """Publish `analyze_task(task_id)` to the task type's queue (blocking; raises when the broker is down).

    `resent`: sent again because the worker running it died; said in a message header, which
    workers that do not know it ignore (an argument would make them refuse the message).
    """
    headers = {RESENT_HEADER: True} if resent else None
    # The Celery id is the task id: one id in every log, and no second UUID to generate.
    call = analyze_call(task_id, image_key)
    app.send_task(ANALYZE_TASK_NAME, queue=task_type, task_id=task_id, headers=headers, **call)


def broker_ping(timeout_s: int = 1) -> None:
    """Raise unless the broker accepts a connection within `timeout_s` (for health checks)."""
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout_s)
