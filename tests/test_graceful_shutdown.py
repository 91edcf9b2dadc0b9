"""SIGTERM on the API (what orchestrators send): requests in flight finish, then the process exits."""

from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support import multipart
from tests.support.images import jpeg_bytes


def test_an_upload_in_flight_is_accepted_after_sigterm(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = new_stack(redis_server, tmp_path_factory)
    try:
        stack.start_api()
        api = stack.processes["api"]
        task_id = str(uuid.uuid4())
        image = jpeg_bytes((800, 600))
        content_type, body = multipart.encode(
            multipart.analyze_parts(task_id, "pano", "http://127.0.0.1:9/cb", ("x.jpg", image))
        )
        head = (
            f"POST /api/v1/analyze HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", stack.api_port), timeout=20) as connection:
            half = len(body) // 2
            connection.sendall(head + body[:half])
            time.sleep(0.3)  # the request is being read now
            api.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert api.poll() is None, "the API exited with a request in flight"
            connection.sendall(body[half:])
            answer = connection.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
        # uvicorn exits after the shutdown, re-raising SIGTERM so the exit status says why.
        assert api.wait(timeout=30) in (0, -signal.SIGTERM)
        assert stack.record(task_id)["status"] == "queued"
        assert stack.queued_messages()["pano"] == 1
    finally:
        stack.stop()
