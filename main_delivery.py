"""Start the callback delivery service: `python main_delivery.py` (one or more per deployment)."""

from __future__ import annotations

import asyncio
import signal
import sys

from server.delivery import DeliveryService
from server.logsetup import configure_logging
from server.settings import Settings, startup_settings


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await DeliveryService(settings).run(stop)


def main() -> int:
    settings = startup_settings()
    configure_logging(settings.worker.loglevel, settings.app.log_format)
    if settings.metrics.delivery_port:
        from prometheus_client import start_http_server

        from server.metrics import registry

        start_http_server(settings.metrics.delivery_port, registry=registry())
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
