"""Celery tasks: thin wrappers that hand a task id to the process's `TaskProcessor`."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from celery.signals import worker_process_init

from pipelines import build_pipelines
from server.core.callback import CallbackManager
from server.core.persistence import TaskPersistence
from server.core.processing import TaskProcessor
from server.core.storage import LocalStorage
from server.settings import get_settings
from server.worker import ANALYZE_TASK_NAME, celery_app

logger = logging.getLogger(__name__)


@cache
def processor() -> TaskProcessor:
    """This process's clients and loaded pipelines, built once (after the fork, never in the parent)."""
    settings = get_settings()
    pipelines = build_pipelines(settings.pipelines.mock_delay_s)
    for pipeline in pipelines.values():
        pipeline.load()
    logger.info("pipelines loaded: %s", ", ".join(sorted(pipelines)))
    return TaskProcessor(
        TaskPersistence(settings),
        LocalStorage(settings.api.upload_dir),
        CallbackManager(settings),
        pipelines,
        max_attempts=settings.worker.max_attempts,
        keep_images=settings.storage.keep_images,
    )


@worker_process_init.connect
def _prepare_pool_process(**_: Any) -> None:
    processor()


@celery_app.task(name=ANALYZE_TASK_NAME)
def analyze_task(task_id: str) -> None:
    """Analyze one accepted task; its outcome goes to the task record and the callback."""
    processor().process(task_id)
