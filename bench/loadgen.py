"""HTTP load generator for the analyze endpoint, with its own callback receiver.

Talks to the service over HTTP only. Each request carries a fresh task id and a generated JPEG
of the requested size; the receiver matches callbacks to requests by task id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image


def generated_jpeg(size_bytes: int) -> bytes:
    """A real JPEG padded to `size_bytes` (trailing bytes after EOI are ignored by decoders)."""
    picture = Image.new("L", (256, 128))
    picture.putdata([(x ^ y) & 0xFF for y in range(128) for x in range(256)])
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data + b"\0" * max(0, size_bytes - len(data))


class MultipartTemplate:
    """The analyze form encoded once; only the task id changes between requests."""

    def __init__(self, task_type: str, callback_url: str, image: bytes) -> None:
        self.boundary = uuid.uuid4().hex
        b = self.boundary
        self.content_type = f"multipart/form-data; boundary={b}"
        self._head = f'--{b}\r\nContent-Disposition: form-data; name="taskId"\r\n\r\n'.encode()
        self._tail = (
            f'\r\n--{b}\r\nContent-Disposition: form-data; name="taskType"\r\n\r\n{task_type}'
            f'\r\n--{b}\r\nContent-Disposition: form-data; name="callbackUrl"\r\n\r\n{callback_url}'
            f'\r\n--{b}\r\nContent-Disposition: form-data; name="image"; filename="bench.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        self._image = image
        self._end = f"\r\n--{b}--\r\n".encode()

    def body(self, task_id: str) -> bytes:
        return b"".join((self._head, task_id.encode(), self._tail, self._image, self._end))


@dataclass
class Receiver:
    """Records when each task's callbacks arrive."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # task status in the first callbacks
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    async def wait(self, task_id: str, timeout_s: float) -> None:
        if task_id in self.arrivals:
            return
        waiter = self.waiters.setdefault(task_id, asyncio.get_running_loop().create_future())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout_s)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        payload = json.loads(body)
        task_id = payload.get("taskId", "")
        if task_id not in self.arrivals:
            status = str(payload.get("status"))
            self.outcomes[status] = self.outcomes.get(status, 0) + 1
        self.arrivals.setdefault(task_id, []).append(now)
        self.changed.set()
        waiter = self.waiters.pop(task_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return web.Response(status=200)


async def serve_receiver(port: int) -> tuple[Receiver, web.AppRunner]:
    """A receiver taking callbacks at `http://127.0.0.1:{port}/callback`; clean the runner up after."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/callback", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return receiver, runner


async def post_analyze(client: aiohttp.ClientSession, template: MultipartTemplate, task_id: str) -> int:
    """Send one analyze request and read the whole answer; its HTTP status."""
    body = template.body(task_id)
    async with client.post("/api/v1/analyze", data=body, headers={"Content-Type": template.content_type}) as response:
        await response.read()
        return response.status


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 0.50), 2),
        "p90": round(percentile(ms, 0.90), 2),
        "p99": round(percentile(ms, 0.99), 2),
        "max": round(max(ms), 2) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


async def run_load(
    api_url: str,
    receiver_port: int,
    requests: int,
    concurrency: int,
    image_bytes: int,
    task_type: str = "pano",
    callback_timeout_s: float = 120.0,
    closed_loop: bool = False,
) -> dict[str, Any]:
    """Send `requests` analyze requests from `concurrency` users and collect the callbacks.

    Open loop (default): each user sends its next request as soon as the last one was accepted.
    Closed loop: each user waits for its task's callback first, so latency is measured unqueued.
    """
    receiver, runner = await serve_receiver(receiver_port)
    template = MultipartTemplate(task_type, f"http://127.0.0.1:{receiver_port}/callback", generated_jpeg(image_bytes))
    sent_at: dict[str, float] = {}
    accept_latency: list[float] = []
    statuses: dict[int, int] = {}
    accepted_ids: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(str(uuid.uuid4()))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(api_url, connector=connector, timeout=timeout) as client:

        async def user() -> None:
            while not queue.empty():
                task_id = queue.get_nowait()
                start = time.perf_counter()
                sent_at[task_id] = start
                status = await post_analyze(client, template, task_id)
                accept_latency.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    accepted_ids.append(task_id)
                    if closed_loop:
                        await receiver.wait(task_id, callback_timeout_s)

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        sending_done = time.perf_counter()
    deadline = time.monotonic() + callback_timeout_s
    while time.monotonic() < deadline and not all(t in receiver.arrivals for t in accepted_ids):
        receiver.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.changed.wait(), timeout=1.0)
    await asyncio.sleep(0.3)  # a late duplicate would arrive now
    await runner.cleanup()
    first_callbacks = {t: receiver.arrivals[t][0] for t in accepted_ids if t in receiver.arrivals}
    last_callback = max(first_callbacks.values(), default=sending_done)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "closed_loop": closed_loop,
        "image_bytes": image_bytes,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accept_latency_ms": summary_ms(accept_latency),
        "callback_latency_ms": summary_ms([first_callbacks[t] - sent_at[t] for t in first_callbacks]),
        "accepted_per_s": round(len(accepted_ids) / (sending_done - began), 1),
        "completed_per_s": round(len(first_callbacks) / (last_callback - began), 1),
        "lost_callbacks": len(accepted_ids) - len(first_callbacks),
        "task_outcomes": dict(sorted(receiver.outcomes.items())),
        "task_ids": accepted_ids,  # for the runner's queue-wait figures; not printed
        "duplicate_callbacks": sum(len(v) - 1 for v in receiver.arrivals.values()),
    }
