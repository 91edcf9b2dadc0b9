"""One log format for every process of the service: text by default, JSON lines by `app.log_format`."""

from __future__ import annotations

import logging
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
# JSON lines carry the same fields, plus whatever a call passes in `extra` (taskId, tenant, …).
JSON_FIELDS = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
RENAMED = {"levelname": "level"}


def formatter_config(log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` formatter entry (uvicorn's processes configure themselves so)."""
    if log_format == "json":
        return {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS, "rename_fields": RENAMED}
    return {"format": LOG_FORMAT}


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(JSON_FIELDS, rename_fields=RENAMED)
    return logging.Formatter(LOG_FORMAT)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Per-request and per-task INFO lines of the libraries repeat what the service logs once per
    # task with its id and outcome (Celery: "received" and "succeeded").
    for chatty in ("httpx", "celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    # pydicom's warnings can quote header values, patient attributes among them: never log them.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
