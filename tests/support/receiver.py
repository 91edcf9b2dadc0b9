"""A real HTTP callback receiver on loopback that records what it is sent."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    peer: tuple[str, int]  # the sender's address and port: one port means one reused connection
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class CallbackReceiver:
    """Answers POSTs with the reply configured for their path (200 by default)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.arrived: list[bytes] = []
        # A path's reply, or a list of replies used in turn (the last one then sticks).
        self.replies: dict[str, Reply | list[Reply]] = {}
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    receiver.arrived.append(body)  # before any reply delay
                    receiver._changed.notify_all()
                reply = receiver.next_reply(self.path)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                record = Received(
                    self.path,
                    self.client_address[:2],
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                with receiver._changed:
                    receiver.received.append(record)
                    receiver._changed.notify_all()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status == 204:  # no body, no Content-Length (RFC 9110 §15.3.5)
                    self.end_headers()
                    return
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def next_reply(self, path: str) -> Reply:
        with self._changed:
            planned = self.replies.get(path, Reply())
            if isinstance(planned, list):
                return planned.pop(0) if len(planned) > 1 else planned[0]
            return planned

    def url(self, path: str = "/callback") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received_on(self, path: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.path == path]

    def for_task(self, task_id: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.body and json.loads(r.body).get("taskId") == task_id]

    def wait_for(self, task_id: str, count: int = 1, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                matching = [r for r in self.received if json.loads(r.body).get("taskId") == task_id]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no callback for task {task_id} within {timeout_s}s")
                self._changed.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
