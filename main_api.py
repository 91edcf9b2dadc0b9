"""Start the API server: `python main_api.py` (settings from config.yaml and XRAY__* variables)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from server.logsetup import configure_logging, formatter_config
from server.settings import startup_settings

logger = logging.getLogger("main_api")


def main() -> int:
    settings = startup_settings()
    configure_logging(settings.api.loglevel, settings.app.log_format)
    settings.api.upload_dir.mkdir(parents=True, exist_ok=True)
    from server.metrics_dir import use_process_group

    use_process_group("api")  # before uvicorn imports the app, and so the metrics
    logger.info(
        "starting API on %s:%s with %d process(es); uploads in %s",
        settings.api.host,
        settings.api.port,
        settings.api.workers,
        settings.api.upload_dir.resolve(),
    )
    log_config = dict(uvicorn.config.LOGGING_CONFIG)
    formatter = formatter_config(settings.app.log_format)
    log_config["formatters"] = {"default": formatter, "access": formatter}
    # Every API process (there are `api.workers` of them) applies this dict, not the parent's
    # logging set-up, so the service's own loggers need a root handler here too.
    log_config["root"] = {"handlers": ["default"], "level": settings.api.loglevel.upper()}
    uvicorn.run(
        "server.api:create_app",
        factory=True,
        host=settings.api.host,
        port=settings.api.port,
        workers=settings.api.workers,
        log_level=settings.api.loglevel,
        log_config=log_config,
        access_log=False,
        # Seconds to finish in-flight requests after SIGTERM before connections are cut.
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
