"""Where a process group's metrics go; set before prometheus_client is imported, so imports nothing of it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def use_process_group(role: str) -> Path:
    """Give this process (and the processes it forks) one fresh metrics directory.

    Call in an entry point before anything imports `server.metrics`: prometheus_client picks
    multiprocess mode when its metrics are created, from this variable.
    """
    path = Path(tempfile.gettempdir()) / "xray-metrics" / f"{role}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_VARIABLE] = str(path)
    atexit.register(shutil.rmtree, path, True)
    return path
