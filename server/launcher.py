"""`make run`: API and worker in the foreground, with an embedded Redis when none is reachable.

Ctrl-C (or SIGTERM) stops every child; if one child dies, the others are stopped too, so the
service is never left half up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from server.embedded_redis import EmbeddedRedis, redis_reachable
from server.logsetup import configure_logging
from server.settings import PROJECT_ROOT, get_settings, startup_settings

logger = logging.getLogger("launcher")
STOP_GRACE_S = 30.0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_embedded_redis(env: dict[str, str], data_dir: Path) -> EmbeddedRedis:
    settings = get_settings()
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    wanted = settings.redis.port if _bindable(settings.redis.port) else None
    server = EmbeddedRedis(data_dir, wanted, appendonly=True, password=password)
    server.start()
    env["XRAY__REDIS__HOST"] = server.host
    env["XRAY__REDIS__PORT"] = str(server.port)
    if settings.celery.broker_url:
        logger.warning("celery.broker_url is set explicitly (%s); it is left as it is", settings.celery.broker_url)
    logger.info("no Redis at %s:%s; started an embedded one on %s:%s (data in %s)",
                settings.redis.host, settings.redis.port, server.host, server.port, server.data_dir)  # fmt: skip
    return server


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("pid %d did not stop in %ss; killing it", child.pid, STOP_GRACE_S)
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--redis-dir",
        type=Path,
        default=PROJECT_ROOT / "tmp" / "redis",
        help="where an embedded Redis keeps its append-only file (default: tmp/redis)",
    )
    args = parser.parse_args(argv)
    settings = startup_settings()
    configure_logging(settings.api.loglevel, settings.app.log_format)
    env = dict(os.environ)
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    redis_server = None
    if redis_reachable(settings.redis.host, settings.redis.port, password):
        logger.info("using Redis at %s:%s", settings.redis.host, settings.redis.port)
    else:
        redis_server = _start_embedded_redis(env, args.redis_dir)

    stopping = False

    def request_stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    python = sys.executable
    children = {
        script: subprocess.Popen([python, str(PROJECT_ROOT / script)], env=env)  # noqa: S603 - fixed argv
        for script in ("main_api.py", "main_worker.py", "main_delivery.py")
    }
    exit_code = 0
    try:
        while not stopping:
            exited = [(script, child.returncode) for script, child in children.items() if child.poll() is not None]
            if exited:
                logger.error("%s exited with %s; stopping the rest", *exited[0])
                exit_code = 1
                break
            if redis_server is not None and not redis_server.running():
                logger.error("the embedded Redis exited; stopping the rest (see %s)", redis_server.data_dir)
                exit_code = 1
                break
            time.sleep(0.2)
    finally:
        logger.info("stopping API, worker and callback delivery")
        _stop(list(children.values()))
        if redis_server is not None:
            redis_server.stop()
        logger.info("stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
