"""Start the callback delivery service: `python main_delivery.py` (one or more per deployment)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from server import ConfigError, get_settings
from server.delivery import DeliveryService
from server.logsetup import configure_logging


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201 - logging may not be configured yet
        return 2
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
