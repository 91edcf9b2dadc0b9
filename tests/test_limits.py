"""Uploads over `limits.max_upload_mb` are refused with 413/10004 and leave nothing behind."""

from __future__ import annotations

import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack, running_api
from tests.support import multipart
from tests.support.images import jpeg_bytes
from tests.support.stack import Stack

LIMIT_MB = 0.25


@pytest.fixture(scope="module")
def small_limit(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_api(redis_server, tmp_path_factory, XRAY__LIMITS__MAX_UPLOAD_MB=str(LIMIT_MB)) as stack:
        yield stack


def _body(image_size: int) -> tuple[str, bytes]:
    image = jpeg_bytes()
    image += b"\0" * (image_size - len(image))
    parts = multipart.analyze_parts(str(uuid.uuid4()), "pano", "http://127.0.0.1:9/cb", ("big.jpg", image))
    return multipart.encode(parts)


def _assert_refused(response: httpx.Response, stack: Stack, before: tuple[list[Path], list[str]]) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["code"] == 10004
    assert (stack.stored_files(), stack.task_keys()) == before
    assert not any(stack.upload_dir.glob(".*.part"))


def test_declared_length_over_the_limit_is_refused_up_front(small_limit: Stack) -> None:
    content_type, body = _body(4 * 1024 * 1024)
    before = (small_limit.stored_files(), small_limit.task_keys())
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=body, headers={"Content-Type": content_type}, timeout=30
    )
    _assert_refused(response, small_limit, before)


def test_chunked_upload_over_the_limit_is_refused_while_streaming(small_limit: Stack) -> None:
    content_type, body = _body(int(LIMIT_MB * 1024 * 1024) + 10)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    before = (small_limit.stored_files(), small_limit.task_keys())
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=chunks(), headers={"Content-Type": content_type}, timeout=30
    )
    _assert_refused(response, small_limit, before)


def _chunked(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


def test_chunked_upload_padded_with_fields_is_stored_whole(small_limit: Stack) -> None:
    """Fields before the image must not make the parser cut the image short."""
    image = jpeg_bytes()
    image += b"\0" * (int(LIMIT_MB * 1024 * 1024) - len(image) - 10)
    padding: list[multipart.Part] = [(f"pad{n}", None, b"p" * 8000) for n in range(12)]
    task_id = str(uuid.uuid4())
    parts = padding + multipart.analyze_parts(task_id, "pano", "http://127.0.0.1:9/cb", ("x.jpg", image))
    content_type, body = multipart.encode(parts)
    before = set(small_limit.stored_files())
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze",
        content=_chunked(body),
        headers={"Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    (stored,) = set(small_limit.stored_files()) - before
    assert stored.read_bytes() == image


def test_an_image_just_under_the_limit_is_accepted(small_limit: Stack) -> None:
    content_type, body = _body(int(LIMIT_MB * 1024 * 1024) - 1024)
    before = len(small_limit.stored_files())
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert response.status_code == 202, response.text
    assert len(small_limit.stored_files()) == before + 1


def test_unfinished_uploads_of_a_dead_api_are_swept_at_start(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import os
    import time

    stack = new_stack(redis_server, tmp_path_factory)
    stack.upload_dir.mkdir(parents=True)
    old = stack.upload_dir / ".0123456789abcdef0123456789abcdef.jpg.part"
    fresh = stack.upload_dir / ".fedcba9876543210fedcba9876543210.jpg.part"
    old.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress elsewhere")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    stack.start_api()
    try:
        assert not old.exists()
        assert fresh.exists()
        assert "removed 1 unfinished upload(s)" in stack.log("api")
    finally:
        stack.stop()


def _stream_until_answered(port: int, prefix: bytes, content_type: str, ceiling: int) -> tuple[int, bytes]:
    """Send a chunked upload that never ends (up to `ceiling` bytes) until the server answers."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        "POST /api/v1/analyze HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    block = b"\0" * 65536
    framed_block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    connection.sendall(head.encode() + f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
    sent, answer = len(prefix), b""
    connection.setblocking(False)
    with connection:
        while sent < ceiling and not answer:
            readable, writable, _ = select.select([connection], [connection], [], 5)
            if readable:
                answer = connection.recv(4096)
            elif writable:
                try:
                    sent += connection.send(framed_block)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    break
            else:
                break
    return sent, answer


def test_an_endless_chunked_upload_is_cut_off_and_memory_stays_bounded(small_limit: Stack) -> None:
    parts = multipart.analyze_parts(str(uuid.uuid4()), "pano", "http://127.0.0.1:9/cb", ("big.jpg", jpeg_bytes()))
    content_type, body = multipart.encode(parts)
    prefix = body[: body.index(jpeg_bytes()) + len(jpeg_bytes())]  # the form up to the image's start
    api = psutil.Process(small_limit.processes["api"].pid)
    rss_before = api.memory_info().rss
    before = (small_limit.stored_files(), small_limit.task_keys())
    ceiling = 256 * 1024 * 1024
    sent, answer = _stream_until_answered(small_limit.api_port, prefix, content_type, ceiling)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    # The API stopped reading at the limit; what went beyond sits in the sockets' buffers.
    assert sent < 32 * 1024 * 1024
    assert api.memory_info().rss - rss_before < 32 * 1024 * 1024
    assert (small_limit.stored_files(), small_limit.task_keys()) == before
    assert not any(small_limit.upload_dir.glob(".*.part"))
