"""Schemathesis against the service's own OpenAPI document, on a real API, worker, delivery and Redis.

Every generated request, valid or not, must get an answer the document describes: a documented
status (never a 5xx), the documented body, headers and content type, and a 401 without the key.
`make fuzz` runs this with FUZZ_EXAMPLES=500 examples per operation and mode; a plain test run
with 25.

Generated callback URLs could point anywhere. The service resolves a URL's host at submit and
calls back the URLs its network policy admits, so before a request is sent its callbackUrl's host
is replaced (path, query and the rest kept as generated): by our receiver's when the policy would
admit the URL, by `localhost` (refused by this stack's policy, and no DNS query) when it names a
host to resolve. URLs refused without resolving anything are sent exactly as generated.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
import yarl
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from server.core.netpolicy import CallbackPolicy, CallbackRefused
from server.embedded_redis import EmbeddedRedis
from server.schemas import checked_callback_url
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
KEY = "fuzz-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
# The fuzzed stack's callback policy (see `fuzzed`): no private networks, loopback only as 127.0.0.1.
POLICY = CallbackPolicy.of(False, [], ["127.0.0.1"])
JPEG_SIGNATURE = b"\xff\xd8\xff"
# Every operation of the document (checked below), and whether it has inputs to make invalid.
OPERATIONS = {
    ("POST", "/api/v1/analyze"): True,
    ("GET", "/api/v1/task/{taskId}"): True,
    ("POST", "/api/v1/task/{taskId}/cancel"): True,
    ("POST", "/api/v1/task/{taskId}/callback/retry"): True,
    ("POST", "/api/v1/batch"): True,
    ("GET", "/"): False,
    ("GET", "/health"): False,
    ("GET", "/api/v1/health"): False,
    ("GET", "/livez"): False,
    ("GET", "/readyz"): False,
    ("GET", "/metrics"): False,
}
# Operations whose description is known not to match the service yet, and why.
NOT_YET: dict[tuple[str, str], str] = {}
CASES = [
    pytest.param(
        method,
        path,
        mode,
        id=f"{mode.value} {method} {path}",
        marks=[pytest.mark.skip(reason=NOT_YET[(method, path)])] if (method, path) in NOT_YET else [],
    )
    for (method, path), has_inputs in OPERATIONS.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if has_inputs or mode == GenerationMode.POSITIVE
]

accepted_ids: list[str] = []  # tasks the fuzzed API accepted: the task routes are pointed at them


@pytest.fixture(scope="module")
def callbacks() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def fuzzed(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, callbacks: CallbackReceiver
) -> Iterator[Stack]:
    """API, worker and delivery with an API key, a tight callback policy, and a few tasks to find."""
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__SECURITY__API_KEYS=json.dumps({"fuzz": KEY}),
        XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS="false",
        XRAY__CALLBACK__ALLOWED_HOSTS=json.dumps(["127.0.0.1"]),
        XRAY__CALLBACK__RETRY_SCHEDULE="[0.2]",
        XRAY__PIPELINES__MOCK_DELAY_S="0.2",  # some tasks are still queued or running when fuzzed
    )
    stack.start_all()
    with httpx.Client(headers=AUTH, timeout=30) as http:
        for task_type in ("pano", "ceph", "pano"):
            task_id = str(uuid.uuid4())
            fields = {"taskId": task_id, "taskType": task_type, "callbackUrl": callbacks.url()}
            response = stack.post_analyze(fields, ("x.jpg", jpeg_bytes()), client=http)
            assert response.status_code == 202, response.text
            accepted_ids.append(task_id)
    yield stack
    stack.stop()
    accepted_ids.clear()


@pytest.fixture(scope="module")
def api_schema(fuzzed: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed.base_url}/openapi.json")


def _pick(value: object, choices: int) -> int:
    """A choice that depends only on the generated value, so Hypothesis can replay and shrink it."""
    return zlib.crc32(repr(value).encode("utf-8", "surrogatepass")) % choices


class _NeedsDns(Exception):
    pass


def _resolve_nothing(host: str, port: int) -> list[str]:
    raise _NeedsDns(host)


def _with_host(url: str, host_and_port: str) -> str:
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host_and_port}"))


def _reaches_only(url: str, host: str, port: int | None) -> bool:
    """Whether the service refuses `url`, or reads it (httpx at submit, yarl when sending) as host:port."""
    try:
        checked_callback_url(url)
    except ValueError:
        return True
    checked, sent = httpx.URL(url), yarl.URL(url)
    if checked.raw_host.decode("ascii") != host or sent.raw_host != host:
        return False
    return port is None or (checked.port == port and sent.port == port)


def contained_callback_url(url: str, receiver: CallbackReceiver) -> str:
    """`url` with a host that keeps the callback, if any, on our receiver: see the module docstring."""
    try:
        checked_callback_url(url)
    except ValueError:
        return url  # refused (400/10001) before anything is resolved
    try:
        POLICY.check_url(url, resolve=_resolve_nothing)
    except CallbackRefused:
        return url  # an address literal the policy refuses (400/10008)
    except _NeedsDns:
        refused = _with_host(url, "localhost")  # the policy refuses loopback by name (400/10008)
        return refused if _reaches_only(refused, "localhost", None) else "http://localhost/callback"
    admitted = _with_host(url, f"127.0.0.1:{receiver.port}")
    return admitted if _reaches_only(admitted, "127.0.0.1", receiver.port) else receiver.url()


FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})


def steer(case: schemathesis.Case[Any], receiver: CallbackReceiver) -> None:
    """Keep callbacks on our receiver; let some images, callback URLs and task ids be real ones.

    Random bytes are never an image, random text never names a task: without this, no task would be
    accepted, run, found, cancelled or replayed. A generated image is replaced by other bytes, any
    bytes being a valid `binary`, so a request stays as valid or invalid as generated.
    """
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    # Framing is the HTTP client's business: a generated Content-Length or Transfer-Encoding makes
    # the request unparseable, refused by the HTTP server (uvicorn's plain 400) before any API runs.
    for name in [name for name in case.headers or {} if name.lower() in FRAMING_HEADERS]:
        del case.headers[name]
    if case.operation.path == "/api/v1/analyze":
        body: Any = case.body
        if not isinstance(body, dict):
            return
        url = body.get("callbackUrl")
        if isinstance(url, str):
            body["callbackUrl"] = contained_callback_url(url, receiver)
            if positive and _pick(url, 3) == 0:
                body["callbackUrl"] = receiver.url(f"/{_pick(url, 1000)}")
        generated = getattr(body.get("image"), "data", body.get("image"))  # schemathesis wraps bytes in `Binary`
        if isinstance(generated, bytes):
            choice = _pick(generated, 3)
            if choice == 0:
                body["image"] = jpeg_bytes()  # a real image: the task is accepted, runs and succeeds
            elif choice == 1:
                body["image"] = JPEG_SIGNATURE + generated  # a JPEG's first bytes, then anything
    elif positive and case.path_parameters and accepted_ids:
        choice = _pick(case.path_parameters.get("taskId"), 2 * len(accepted_ids))
        if choice < len(accepted_ids):
            case.path_parameters["taskId"] = accepted_ids[choice]


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    documented = {(method.upper(), path) for path, methods in api_schema.items() for method in methods}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_is_documented(
    api_schema: schemathesis.BaseSchema, callbacks: CallbackReceiver, method: str, path: str, mode: GenerationMode
) -> None:
    """Schemathesis' checks on every answer: no 5xx, and status, body, headers and auth as documented."""

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case[Any]) -> None:
        steer(case, callbacks)
        # Not `positive_data_acceptance`: no schema can say that the image must be one, nor which
        # callback hosts the network policy admits, so some schema-valid requests are rightly refused.
        response = case.call_and_validate(
            headers=AUTH, timeout=30, excluded_checks=[schemathesis.checks.positive_data_acceptance]
        )
        if path == "/api/v1/analyze" and response.status_code == 202:
            accepted_ids.append(response.json()["taskId"])

    fuzz()


def test_every_accepted_task_is_called_back(fuzzed: Stack, callbacks: CallbackReceiver) -> None:
    """Whatever URL the API accepted, the delivery service could send to it."""
    deadline = time.monotonic() + 30 + 0.25 * len(accepted_ids)  # mock inference: 0.2 s, two at a time
    waiting = list(accepted_ids)
    while waiting and time.monotonic() < deadline:
        waiting = [task_id for task_id in waiting if not callbacks.for_task(task_id)]
        time.sleep(0.1)
    if waiting:
        with httpx.Client(base_url=fuzzed.base_url, headers=AUTH, timeout=10) as http:
            states = [http.get(f"/api/v1/task/{task_id}").json() for task_id in waiting[:3]]
        pytest.fail(f"{len(waiting)} accepted task(s) never called back, e.g. {states}")
