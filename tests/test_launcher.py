"""`make run`'s launcher: embedded Redis when none is reachable, everything stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

from server.embedded_redis import free_port, redis_reachable
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import PROJECT_ROOT


def test_launcher_runs_the_service_on_an_embedded_redis_and_stops_everything(
    tmp_path: Path, receiver: CallbackReceiver
) -> None:
    redis_port, api_port = free_port(), free_port()
    assert not redis_reachable("127.0.0.1", redis_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY")}
    env.update(
        XRAY__REDIS__HOST="127.0.0.1",
        XRAY__REDIS__PORT=str(redis_port),
        XRAY__API__HOST="127.0.0.1",
        XRAY__API__PORT=str(api_port),
        XRAY__API__UPLOAD_DIR=str(tmp_path / "uploads"),
        XRAY__PIPELINES__MOCK_DELAY_S="0",
    )
    log = open(tmp_path / "launcher.log", "wb")  # noqa: SIM115 - closed below
    launcher = subprocess.Popen(
        [sys.executable, "-m", "server.launcher", "--redis-dir", str(tmp_path / "redis")],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        task_id = str(uuid.uuid4())
        deadline = time.monotonic() + 60
        while True:
            assert launcher.poll() is None, (tmp_path / "launcher.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "launcher.log").read_text()
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{api_port}/api/v1/analyze",
                    data={"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()},
                    files={"image": ("x.jpg", jpeg_bytes(), "image/jpeg")},
                    timeout=10,
                )
                if response.status_code == 202:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert receiver.wait_for(task_id, timeout_s=60)[0].json["status"] == "succeeded"
        assert redis_reachable("127.0.0.1", redis_port)  # the embedded one, on the configured port
        family = [launcher.pid, *(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))]
        assert len(family) >= 5  # launcher, Redis, API, worker and its pool processes

        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C does
        assert launcher.wait(60) == 0
        still_running = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert still_running == []
        assert not redis_reachable("127.0.0.1", redis_port)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        log.close()
