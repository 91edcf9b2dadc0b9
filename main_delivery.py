"""Start the callback delivery service: `python main_delivery.py` (one or more per deployment)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from server.delivery import DeliveryService
from server.logsetup import configure_logging
from server.settings import startup_settings


def main() -> int:
    settings = startup_settings()
    configure_logging(settings.worker.loglevel)
    stop = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    DeliveryService(settings).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
