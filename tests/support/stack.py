"""Real service processes for the tests: the API and Celery workers as separate OS processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import redis

from server.core.persistence import decode_fields, task_key
from server.embedded_redis import EmbeddedRedis, free_port
from tests.support.images import jpeg_bytes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY_PREFIX = "xray-test:"


class Stack:
    """One service deployment: its own Redis database, upload directory and processes."""

    def __init__(self, redis_server: EmbeddedRedis, db: int, workdir: Path, **settings: str) -> None:
        self.redis_server = redis_server
        self.db = db
        self.workdir = workdir
        self.upload_dir = workdir / "uploads"
        self.api_port = free_port()
        self.settings = {
            "XRAY__REDIS__HOST": redis_server.host,
            "XRAY__REDIS__PORT": str(redis_server.port),
            "XRAY__REDIS__DB": str(db),
            "XRAY__REDIS__KEY_PREFIX": KEY_PREFIX,
            "XRAY__API__HOST": "127.0.0.1",
            "XRAY__API__PORT": str(self.api_port),
            "XRAY__API__UPLOAD_DIR": str(self.upload_dir),
            "XRAY__PIPELINES__MOCK_DELAY_S": "0",
            **settings,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("XRAY")}
        return {**inherited, **self.settings}

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen([sys.executable, *argv], cwd=PROJECT_ROOT, env=self.env(), stdout=log, stderr=log)
        self.processes[name] = process
        self._logs[name] = log
        return process

    def start_api(self, workers: int = 1, timeout_s: float = 30.0) -> None:
        self.settings["XRAY__API__WORKERS"] = str(workers)
        process = self._spawn("api", ["main_api.py"])
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.base_url}/livez", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start:\n{self.log('api')[-3000:]}")
            time.sleep(0.1)

    def _start_until_logged(self, name: str, argv: list[str], ready: str, timeout_s: float) -> subprocess.Popen[bytes]:
        process = self._spawn(name, argv)
        deadline = time.monotonic() + timeout_s
        while ready not in self.log(name):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log(name)[-3000:]}")
            time.sleep(0.05)
        return process

    def start_worker(self, name: str = "worker", *args: str, timeout_s: float = 60.0) -> subprocess.Popen[bytes]:
        return self._start_until_logged(name, ["main_worker.py", *args], " ready.", timeout_s)

    def start_delivery(self, name: str = "delivery", timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
        return self._start_until_logged(name, ["main_delivery.py"], "callback delivery running", timeout_s)

    def start_all(self, api_workers: int = 1) -> Stack:
        """API, one worker and the callback delivery service; none left running if one fails to start."""
        try:
            self.start_api(workers=api_workers)
            self.start_worker()
            self.start_delivery()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        for key in [name] if name else list(self.processes):
            process = self.processes.pop(key)
            if process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._logs.pop(key).close()

    def redis(self) -> redis.Redis:
        return redis.Redis(host=self.redis_server.host, port=self.redis_server.port, db=self.db, decode_responses=True)

    def task_keys(self) -> list[str]:
        with self.redis() as client:
            return sorted(client.scan_iter(f"{KEY_PREFIX}*"))

    def queued_messages(self) -> dict[str, int]:
        with self.redis() as client:
            return {queue: int(client.llen(queue)) for queue in ("pano", "ceph")}

    def stored_files(self) -> list[Path]:
        return sorted(p for p in self.upload_dir.rglob("*") if p.is_file()) if self.upload_dir.exists() else []

    def record(self, task_id: str) -> dict[str, Any]:
        """The task's record as Redis holds it ({} when there is none)."""
        with self.redis() as client:
            return decode_fields(client.hgetall(task_key(KEY_PREFIX, task_id)))

    def view(self, task_id: str) -> dict[str, Any]:
        """The task as `GET /api/v1/task/{taskId}` shows it."""
        body: dict[str, Any] = httpx.get(f"{self.base_url}/api/v1/task/{task_id}", timeout=10).json()
        return body

    def submit(self, callback_url: str, task_type: str = "pano", image: tuple[str, bytes] | None = None) -> str:
        """Accept a new task with a real JPEG (or the image given); returns its id."""
        task_id = str(uuid.uuid4())
        response = self.post_analyze(
            {"taskId": task_id, "taskType": task_type, "callbackUrl": callback_url}, image or ("x.jpg", jpeg_bytes())
        )
        assert response.status_code == 202, response.text
        return task_id

    def post_analyze(
        self,
        fields: Mapping[str, str],
        image: tuple[str, bytes] | None,
        client: httpx.Client | None = None,
    ) -> httpx.Response:
        files = {"image": (image[0], image[1], "application/octet-stream")} if image else None
        if client is None:
            return httpx.post(f"{self.base_url}/api/v1/analyze", data=dict(fields), files=files, timeout=30)
        return client.post(f"{self.base_url}/api/v1/analyze", data=dict(fields), files=files)


def wait_until(condition: Callable[[], object], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
