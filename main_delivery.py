"""Start the callback delivery service: `python main_delivery.py` (one or more per deployment)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from server.delivery import DeliveryService
from server.logsetup import configure_logging
from server.settings import Settings, startup_settings


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await DeliveryService(settings).run(stop)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (libuv: less CPU per callback than asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:  # not built for every platform; asyncio's loop does the same, a little slower
        asyncio.run(main)
        return
    uvloop.run(main)


def main() -> int:
    settings = startup_settings()
    configure_logging(settings.worker.loglevel, settings.app.log_format)
    if settings.metrics.delivery_port:
        from prometheus_client import start_http_server

        from server.metrics import registry

        start_http_server(settings.metrics.delivery_port, registry=registry())
    run_event_loop(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
