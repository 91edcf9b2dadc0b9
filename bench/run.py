"""`make bench`: start Redis, the API and a worker with mock delay 0, drive them over HTTP, print JSON.

    make bench                                   # the standard scenarios
    make bench BENCH_ARGS="--soak 10000"         # plus worker memory over 10,000 tasks
    make bench BENCH_ARGS="--scenarios serial_100k"   # one scenario
    make bench BENCH_ARGS="--pipelines"          # also the real pipelines' per-stage costs (bench.pipelines)

Conditions (machine, process counts, image sizes) are written into the output beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil
import redis

from bench.loadgen import run_load, summary_ms
from server.core.persistence import task_key
from server.embedded_redis import EmbeddedRedis, free_port
from server.settings import RedisSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KB = 1024
MB = 1024 * KB


class Scenario(NamedTuple):
    requests: int
    concurrency: int
    image_bytes: int
    closed_loop: bool = False  # wait for each callback before the next request


SCENARIOS = {
    "serial_100k": Scenario(300, 1, 100 * KB, closed_loop=True),
    "c8_100k": Scenario(3000, 8, 100 * KB),
    "c8_5m": Scenario(300, 8, 5 * MB),
    "c8_50m": Scenario(16, 8, 50 * MB - 64 * KB),  # just under the default upload limit
}


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def family(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def memory_report(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, process in processes.items():
        members = family(process.pid)
        report[name] = {
            "peak_rss_mb_max": max(peak_rss_mb(p.pid) for p in members),
            "peak_rss_mb_each": [peak_rss_mb(p.pid) for p in members],
            "rss_mb_now_total": round(sum(p.memory_info().rss for p in members) / MB, 1),
        }
    return report


def tree_cpu_seconds(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each process and its children."""
    return {name: sum(sum(p.cpu_times()[:2]) for p in family(process.pid)) for name, process in processes.items()}


def cpu_seconds(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each process tree, this load generator and its Redis."""
    totals = tree_cpu_seconds(processes)
    me = psutil.Process()
    totals["loadgen"] = sum(me.cpu_times()[:2])
    totals["redis"] = sum(sum(p.cpu_times()[:2]) for p in me.children() if "redis" in p.name())
    return totals


DEFAULT_KEY_PREFIX = RedisSettings().key_prefix  # the runner's services keep the default


def queue_wait_ms(redis_server: EmbeddedRedis, task_ids: list[str]) -> dict[str, float]:
    """Accepted → started, from the task records (`createdAt`, `startedAt`)."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    with client, client.pipeline(transaction=False) as batch:
        for task_id in task_ids:
            batch.hmget(task_key(DEFAULT_KEY_PREFIX, task_id), "createdAt", "startedAt")
        answers = batch.execute()
    waits = [
        (datetime.fromisoformat(json.loads(started)) - datetime.fromisoformat(json.loads(created))).total_seconds()
        for created, started in answers
        if created and started
    ]
    return summary_ms(waits)


def pool_rss_mb(worker: subprocess.Popen[bytes]) -> list[float]:
    return [round(p.memory_info().rss / MB, 2) for p in psutil.Process(worker.pid).children()]


def start(
    name: str, argv: list[str], env: dict[str, str], logdir: Path, cwd: Path = PROJECT_ROOT
) -> subprocess.Popen[bytes]:
    log = open(logdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=log, stderr=log)


def stack_env(
    redis_server: EmbeddedRedis, api_port: int, workdir: Path, *, api_workers: int, pool: int, loglevel: str
) -> dict[str, str]:
    """The environment of a benchmarked stack's processes: this one's, minus any XRAY settings, plus its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY")}
    env.update(
        XRAY__REDIS__HOST=redis_server.host,
        XRAY__REDIS__PORT=str(redis_server.port),
        XRAY__API__HOST="127.0.0.1",
        XRAY__API__PORT=str(api_port),
        XRAY__API__WORKERS=str(api_workers),
        XRAY__API__UPLOAD_DIR=str(workdir / "uploads"),
        XRAY__API__LOGLEVEL=loglevel,
        XRAY__WORKER__LOGLEVEL=loglevel,
        XRAY__WORKER__CONCURRENCY=str(pool),
        XRAY__PIPELINES__MOCK_DELAY_S="0",
    )
    return env


def wait_ready(api_url: str, logdir: Path, timeout_s: float = 60, ready: tuple[int, ...] = (200,)) -> None:
    """Until `/readyz` answers with a status in `ready`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/readyz", timeout=1).status_code in ready:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"service did not start; see {logdir}")


def stop_stack(processes: Iterable[subprocess.Popen[bytes]], redis_server: EmbeddedRedis) -> None:
    """Terminate the stack's processes (killed if they take over 30 s), then its Redis."""
    running = list(processes)
    try:
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        redis_server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="serial_100k,c8_100k,c8_5m,c8_50m")
    parser.add_argument("--soak", type=int, default=0, help="tasks for the worker-memory soak (0: skip)")
    parser.add_argument("--pool", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (main_worker.py instances)")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--loglevel", default="warning", help="API and worker log level during the run")
    parser.add_argument("--pipelines", action="store_true", help="also time decode/pre/post-processing")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="xray-bench-"))
    redis_server = EmbeddedRedis(workdir / "redis")
    redis_server.start()
    api_port = free_port()
    env = stack_env(
        redis_server, api_port, workdir, api_workers=args.api_workers, pool=args.pool, loglevel=args.loglevel
    )
    processes = {
        "api": start("api", ["main_api.py"], env, workdir),
        **{
            ("worker" if n == 0 else f"worker{n + 1}"): start(f"worker{n + 1}", ["main_worker.py"], env, workdir)
            for n in range(args.workers)
        },
        "delivery": start("delivery", ["main_delivery.py"], env, workdir),
    }
    api_url = f"http://127.0.0.1:{api_port}"
    results: dict[str, Any] = {
        "conditions": {
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, "
            f"{round(psutil.virtual_memory().total / 2**30)} GiB",
            "python": platform.python_version(),
            "api_processes": args.api_workers,
            "worker_processes": args.workers,
            "worker_pool_processes": args.pool,
            "mock_delay_s": 0,
            "log_level": args.loglevel,
            "redis": "embedded, loopback, AOF everysec",
        },
        "scenarios": {},
    }
    try:
        wait_ready(api_url, workdir)
        # Warm-up, not reported; it also waits for the worker to take tasks.
        asyncio.run(run_load(api_url, free_port(), 50, 4, 10 * KB, callback_timeout_s=120))
        for name in args.scenarios.split(","):
            cpu_before = cpu_seconds(processes)
            figures = asyncio.run(run_load(api_url, free_port(), **SCENARIOS[name]._asdict()))
            cpu_after = cpu_seconds(processes)
            figures["queue_wait_ms"] = queue_wait_ms(redis_server, figures.pop("task_ids"))
            figures["cpu_ms_per_task"] = {
                who: round((cpu_after[who] - cpu_before[who]) * 1000 / figures["requests"], 2) for who in cpu_after
            }
            figures["memory"] = memory_report(processes)
            results["scenarios"][name] = figures
            print(f"{name}: done", file=sys.stderr)
        if args.soak:
            worker = processes["worker"]
            asyncio.run(run_load(api_url, free_port(), 1000, 8, 10 * KB))
            before = pool_rss_mb(worker)
            soak = asyncio.run(run_load(api_url, free_port(), args.soak, 8, 10 * KB))
            after = pool_rss_mb(worker)
            growth = max((a - b) / b * 100 for a, b in zip(after, before, strict=False))
            soak.pop("task_ids")
            soak.update(pool_rss_mb_before=before, pool_rss_mb_after=after, pool_rss_growth_pct=round(growth, 2))
            results["soak"] = soak
    finally:
        stop_stack(processes.values(), redis_server)
    if args.pipelines:
        from bench.pipelines import figures as pipeline_figures

        results["pipelines"] = pipeline_figures()
    shutil.rmtree(workdir, ignore_errors=True)  # kept only when the run failed: its logs say why
    print(json.dumps(results, indent=2))
    out = PROJECT_ROOT / "tmp" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
