"""One log format for every process of the service."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    # Per-request and per-task INFO lines of the libraries repeat what the service logs once per
    # task with its id and outcome (httpx: each callback; Celery: "received" and "succeeded").
    for chatty in ("httpx", "celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    # pydicom's warnings can quote header values, patient attributes among them: never log them.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
