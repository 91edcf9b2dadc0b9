"""Uploads over `limits.max_upload_mb` are refused with 413/10004 and leave nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support import multipart
from tests.support.images import jpeg_bytes
from tests.support.stack import Stack

LIMIT_MB = 0.25


@pytest.fixture(scope="module")
def small_limit(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__LIMITS__MAX_UPLOAD_MB=str(LIMIT_MB))
    stack.start_api()
    yield stack
    stack.stop()


def _body(image_size: int) -> tuple[str, bytes]:
    image = jpeg_bytes()
    image += b"\0" * (image_size - len(image))
    parts = multipart.analyze_parts(str(uuid.uuid4()), "pano", "http://127.0.0.1:9/cb", ("big.jpg", image))
    return multipart.encode(parts)


def _assert_refused(response: httpx.Response, stack: Stack) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["code"] == 10004
    assert stack.stored_files() == []
    assert stack.task_keys() == []


def test_declared_length_over_the_limit_is_refused_up_front(small_limit: Stack) -> None:
    content_type, body = _body(4 * 1024 * 1024)
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=body, headers={"Content-Type": content_type}, timeout=30
    )
    _assert_refused(response, small_limit)


def test_chunked_upload_over_the_limit_is_refused_while_streaming(small_limit: Stack) -> None:
    content_type, body = _body(int(LIMIT_MB * 1024 * 1024) + 10)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=chunks(), headers={"Content-Type": content_type}, timeout=30
    )
    _assert_refused(response, small_limit)


def test_an_image_just_under_the_limit_is_accepted(small_limit: Stack) -> None:
    content_type, body = _body(int(LIMIT_MB * 1024 * 1024) - 1024)
    response = httpx.post(
        f"{small_limit.base_url}/api/v1/analyze", content=body, headers={"Content-Type": content_type}, timeout=30
    )
    assert response.status_code == 202, response.text
    assert len(small_limit.stored_files()) == 1
