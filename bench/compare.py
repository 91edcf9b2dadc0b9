"""Same-moment comparison of checkouts: serial send→callback latency and CPU per request.

    python -m bench.compare HEAD=. OLD=/path/to/other/checkout [--rounds 400] [--warmup 30]

On a small or shared machine, runs of `make bench` minutes apart differ by more than most changes
do. This starts one complete stack per checkout at once (its own embedded Redis, API, worker with
2 pool processes, callback delivery where the checkout has one; mock delay 0), all with this
checkout's Python environment, and sends closed-loop 100 KB requests to them in turn: one request
at a time, the next stack after each callback, in a fresh (seeded) random order every round.
Every stack sees the same machine. Prints JSON: per stack, send→callback and accept latency, and the CPU
milliseconds per request of each of its processes over the measured rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.loadgen import MultipartTemplate, Receiver, generated_jpeg, post_analyze, serve_receiver, summary_ms
from bench.run import stack_env, start, stop_stack, tree_cpu_seconds, wait_ready
from server.embedded_redis import EmbeddedRedis, free_port

ENTRY_POINTS = ("main_api.py", "main_worker.py", "main_delivery.py")
IMAGE_BYTES = 100 * 1024
CALLBACK_TIMEOUT_S = 30.0
ORDER_SEED = 3  # the same sequence of orders on every run


@dataclass
class Stack:
    name: str
    checkout: Path
    workdir: Path
    redis: EmbeddedRedis
    url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    callback_s: list[float] = field(default_factory=list)
    accept_s: list[float] = field(default_factory=list)

    def stop(self) -> None:
        try:
            stop_stack(self.processes.values(), self.redis)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_stack(name: str, checkout: Path) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix=f"xray-compare-{name}-"))
    stack = Stack(name, checkout, workdir, EmbeddedRedis(workdir / "redis"))
    try:
        stack.redis.start()
        api_port = free_port()
        env = stack_env(stack.redis, api_port, workdir, api_workers=1, pool=2, loglevel="warning")
        for script in ENTRY_POINTS:
            if (checkout / script).exists():
                stack.processes[script] = start(script, [script], env, workdir, cwd=checkout)
        stack.url = f"http://127.0.0.1:{api_port}"
        wait_ready(stack.url, workdir, ready=(200, 404))  # 404: a checkout from before /readyz
    except BaseException:
        stack.stop()
        raise
    return stack


async def one_request(
    session: aiohttp.ClientSession, template: MultipartTemplate, receiver: Receiver
) -> tuple[float, float]:
    """(accept, send→callback) seconds of one task."""
    task_id = str(uuid.uuid4())
    sent = time.perf_counter()
    status = await post_analyze(session, template, task_id)
    if status != 202:
        raise RuntimeError(f"HTTP {status} for task {task_id}")
    accepted = time.perf_counter()
    await receiver.wait(task_id, CALLBACK_TIMEOUT_S)
    if task_id not in receiver.arrivals:
        raise RuntimeError(f"no callback for task {task_id} within {CALLBACK_TIMEOUT_S} s")
    return accepted - sent, receiver.arrivals[task_id][0] - sent


async def compare(stacks: list[Stack], rounds: int, warmup: int) -> dict[str, Any]:
    port = free_port()
    receiver, runner = await serve_receiver(port)
    template = MultipartTemplate("pano", f"http://127.0.0.1:{port}/callback", generated_jpeg(IMAGE_BYTES))
    sessions = {stack.name: aiohttp.ClientSession(stack.url) for stack in stacks}
    cpu_before: dict[str, dict[str, float]] = {}
    order = random.Random(ORDER_SEED)
    try:
        for round_number in range(warmup + rounds):
            if round_number == warmup:
                cpu_before = {stack.name: tree_cpu_seconds(stack.processes) for stack in stacks}
            # A stack's request runs alongside the tail of the one before it (the settle, the ack):
            # with a fixed or merely reversed order, the middle one of three always followed
            # another stack and measured about 0.2 ms slower. A random order gives each stack the
            # same mix of predecessors, itself included.
            for stack in order.sample(stacks, len(stacks)):
                accept_s, callback_s = await one_request(sessions[stack.name], template, receiver)
                if round_number >= warmup:
                    stack.accept_s.append(accept_s)
                    stack.callback_s.append(callback_s)
    finally:
        for session in sessions.values():
            await session.close()
        await runner.cleanup()
    report: dict[str, Any] = {}
    for stack in stacks:
        cpu_after = tree_cpu_seconds(stack.processes)
        report[stack.name] = {
            "checkout": str(stack.checkout),
            "callback_latency_ms": summary_ms(stack.callback_s),
            "accept_latency_ms": summary_ms(stack.accept_s),
            "cpu_ms_per_request": {
                name: round((cpu_after[name] - cpu_before[stack.name][name]) * 1000 / rounds, 3) for name in cpu_after
            },
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkouts", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--rounds", type=int, default=400, help="measured requests per stack")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests per stack first")
    args = parser.parse_args()
    named = [entry.partition("=") for entry in args.checkouts]
    if any(not sep for _, sep, _ in named):
        parser.error("give each checkout as NAME=PATH")
    if len({name for name, _, _ in named}) < len(named):
        parser.error("give each checkout a name of its own")
    stacks: list[Stack] = []
    try:
        for name, _, path in named:
            stacks.append(start_stack(name, Path(path).resolve()))
        report = asyncio.run(compare(stacks, args.rounds, args.warmup))
    finally:
        for stack in stacks:
            stack.stop()
    conditions = {
        "machine": f"{psutil.cpu_count()} cores",
        "rounds": args.rounds,
        "warmup": args.warmup,
        "image_bytes": IMAGE_BYTES,
        "worker_pool_processes": 2,
        "mock_delay_s": 0,
    }
    print(json.dumps({"conditions": conditions, "stacks": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
