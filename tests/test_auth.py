"""API keys and tenants, through a real API, worker and delivery with keys configured."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.auth import ApiKeys
from server.embedded_redis import EmbeddedRedis
from server.settings import ConfigError, load_settings
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack

KEYS = {"clinic-a": "a-key-0123456789abcdef", "clinic-b": "b-key-0123456789abcdef"}


@pytest.fixture(scope="module")
def keyed(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__SECURITY__API_KEYS=json.dumps(KEYS))
    stack.start_all()
    yield stack
    stack.stop()


def client(stack: Stack, tenant: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
    return httpx.Client(base_url=stack.base_url, headers=headers, timeout=30)


def submit(stack: Stack, tenant: str | None, task_id: str, callback_url: str) -> httpx.Response:
    with client(stack, tenant) as http:
        fields = {"taskId": task_id, "taskType": "pano", "callbackUrl": callback_url}
        return stack.post_analyze(fields, ("x.jpg", jpeg_bytes()), client=http)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Basic {KEYS['clinic-a']}", "Bearer wrong-key-0123456789abcdef", KEYS["clinic-a"]],
)
def test_every_api_route_needs_a_known_key(keyed: Stack, receiver: CallbackReceiver, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    task_id = str(uuid.uuid4())
    with httpx.Client(base_url=keyed.base_url, headers=headers, timeout=30) as http:
        answers = [
            keyed.post_analyze(
                {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes()), http
            ),
            http.get(f"/api/v1/task/{task_id}"),
            http.post(f"/api/v1/task/{task_id}/cancel"),
            http.post(f"/api/v1/task/{task_id}/callback/retry"),
        ]
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == 10005
        assert answer.headers["www-authenticate"] == "Bearer"
    assert keyed.stored_files() == []
    assert not [key for key in keyed.task_keys() if task_id in key]


def test_health_root_and_docs_stay_open(keyed: Stack) -> None:
    with client(keyed, None) as http:
        for path in ("/health", "/api/v1/health", "/", "/openapi.json"):
            assert http.get(path).status_code == 200, path


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(keyed: Stack) -> None:
    head = (
        "POST /api/v1/analyze HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {40 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", keyed.api_port), timeout=10) as connection:
        connection.sendall(head.encode())  # and not one byte of the promised 40 MB
        answer = connection.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 401")


def test_a_tenant_sees_cancels_and_replays_only_its_own_tasks(keyed: Stack, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    assert submit(keyed, "clinic-a", task_id, receiver.url()).status_code == 202
    receiver.wait_for(task_id)
    with client(keyed, "clinic-b") as other:
        for answer in (
            other.get(f"/api/v1/task/{task_id}"),
            other.post(f"/api/v1/task/{task_id}/cancel"),
            other.post(f"/api/v1/task/{task_id}/callback/retry"),
        ):
            assert answer.status_code == 404
            assert answer.json()["code"] == 10006
    unknown = str(uuid.uuid4())
    with client(keyed, "clinic-b") as other:
        # Indistinguishable from a task that never existed.
        assert other.get(f"/api/v1/task/{task_id}").json() == other.get(f"/api/v1/task/{unknown}").json()
    with client(keyed, "clinic-a") as owner:
        view = owner.get(f"/api/v1/task/{task_id}").json()
        assert (view["taskId"], view["status"]) == (task_id, "succeeded")
        assert owner.post(f"/api/v1/task/{task_id}/callback/retry").status_code == 202
        refused = owner.post(f"/api/v1/task/{task_id}/cancel")
        assert refused.status_code == 409
        assert task_id in refused.text and "clinic-a" not in refused.text  # the client's id, never the tenant
    assert len(receiver.wait_for(task_id, count=2)) == 2


def test_two_tenants_may_use_the_same_task_id(keyed: Stack, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    assert submit(keyed, "clinic-a", task_id, receiver.url("/a")).status_code == 202
    assert submit(keyed, "clinic-b", task_id, receiver.url("/b")).status_code == 202
    assert submit(keyed, "clinic-a", task_id, receiver.url("/a")).status_code == 409
    callbacks = receiver.wait_for(task_id, count=2)
    assert sorted(c.path for c in callbacks) == ["/a", "/b"]
    assert all(c.json["taskId"] == task_id and c.json["status"] == "succeeded" for c in callbacks)
    for tenant in KEYS:
        with client(keyed, tenant) as http:
            assert http.get(f"/api/v1/task/{task_id}").json()["status"] == "succeeded"


def test_keys_are_matched_in_full() -> None:
    from pydantic import SecretStr

    keys = ApiKeys({tenant: SecretStr(key) for tenant, key in KEYS.items()})
    assert keys.tenant_for(KEYS["clinic-b"]) == "clinic-b"
    assert keys.tenant_for(KEYS["clinic-b"][:-1]) is None
    assert keys.tenant_for(KEYS["clinic-b"] + "x") is None
    assert keys.tenant_for("") is None


@pytest.mark.parametrize(
    ("keys", "complaint"),
    [
        ('{"clinic a": "0123456789abcdef0"}', "tenant name"),
        ('{"clinic-a": "short"}', "at least 16"),
        ('{"a": "0123456789abcdef0", "b": "0123456789abcdef0"}', "keys must differ"),
        ('["not", "a", "map"]', "security.api_keys"),
    ],
)
def test_unusable_keys_are_refused_at_start_up(monkeypatch: pytest.MonkeyPatch, keys: str, complaint: str) -> None:
    monkeypatch.setenv("XRAY__SECURITY__API_KEYS", keys)
    with pytest.raises(ConfigError, match=complaint):
        load_settings()


def test_without_keys_the_api_is_open_and_says_so(stack: Stack) -> None:
    assert "NO API KEYS CONFIGURED" in stack.log("api")
