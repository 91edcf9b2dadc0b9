"""X-Ray Inference Service: HTTP API, task persistence, Celery worker and callback delivery."""

from __future__ import annotations

from typing import Any

from server.settings import ConfigError, Settings, get_settings, load_settings

__version__ = "1.0.0"
SERVICE_NAME = "X-Ray Inference Service"

__all__ = ["SERVICE_NAME", "ConfigError", "Settings", "__version__", "get_settings", "load_config", "load_settings"]


def load_config() -> dict[str, Any]:
    """The validated configuration as a plain dict (`config['redis']['host']`), read afresh."""
    return load_settings().model_dump()
