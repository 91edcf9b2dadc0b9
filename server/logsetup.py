"""One log format for every process of the service."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    # httpx logs every request at INFO; the callback sender logs its own outcome with the task id.
    logging.getLogger("httpx").setLevel(logging.WARNING)
