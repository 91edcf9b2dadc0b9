from __future__ import annotations

import uuid

import pytest

from server.core.callback import USER_AGENT, CallbackManager
from server.embedded_redis import free_port
from server.settings import Settings
from tests.support.receiver import CallbackReceiver, Reply


def test_seed_step_4_callback_is_delivered(settings: Settings, receiver: CallbackReceiver) -> None:
    with CallbackManager(settings.model_dump()) as manager:
        task_id = str(uuid.uuid4())
        payload: dict[str, object] = {"taskId": task_id, "data": {"teeth": [], "diseases": []}, "error": None}
        assert manager.send_callback(receiver.url(), payload) is True
    (received,) = receiver.wait_for(task_id)
    assert received.json == payload
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == USER_AGENT


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_success(settings: Settings, receiver: CallbackReceiver, status: int) -> None:
    receiver.replies["/cb"] = Reply(status)
    with CallbackManager(settings) as manager:
        assert manager.send_callback(receiver.url("/cb"), {"taskId": str(uuid.uuid4())})


@pytest.mark.parametrize("status", [301, 302, 307, 400, 404, 410, 429, 500, 503])
def test_other_statuses_fail_and_redirects_are_not_followed(
    settings: Settings, receiver: CallbackReceiver, status: int
) -> None:
    receiver.replies["/cb"] = Reply(status, headers={"Location": receiver.url("/elsewhere")})
    with CallbackManager(settings) as manager:
        attempt = manager.deliver(receiver.url("/cb"), {"taskId": str(uuid.uuid4())})
    assert not attempt.delivered
    assert attempt.status_code == status
    assert [r.path for r in receiver.received] == ["/cb"]


def test_unreachable_receiver_is_a_reported_failure(settings: Settings) -> None:
    with CallbackManager(settings) as manager:
        attempt = manager.deliver(f"http://127.0.0.1:{free_port()}/cb", {"taskId": "x"})
    assert not attempt.delivered
    assert attempt.status_code is None
    assert attempt.error and "ConnectError" in attempt.error


def test_slow_receiver_times_out_at_the_configured_timeout(settings: Settings, receiver: CallbackReceiver) -> None:
    receiver.replies["/slow"] = Reply(200, delay_s=settings.callback.timeout + 1)
    with CallbackManager(settings) as manager:
        attempt = manager.deliver(receiver.url("/slow"), {"taskId": "x"})
    assert not attempt.delivered
    assert attempt.error and "timed out" in attempt.error


def test_one_client_is_reused_across_callbacks(settings: Settings, receiver: CallbackReceiver) -> None:
    with CallbackManager(settings) as manager:
        client = manager.client
        for _ in range(3):
            assert manager.send_callback(receiver.url(), {"taskId": str(uuid.uuid4())})
        assert manager.client is client
        # All three went over one kept-alive connection.
        assert len({r.peer for r in receiver.received}) == 1
