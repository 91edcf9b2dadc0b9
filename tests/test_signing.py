"""Standard Webhooks signatures on callbacks, checked with the specification's vector and its library."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from server import ConfigError
from server.core.callback import CallbackManager
from server.core.signing import WebhookSigner
from server.embedded_redis import EmbeddedRedis
from server.settings import Settings, load_settings, settings_from_mapping
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver, Reply
from tests.support.stack import Stack

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_the_published_test_vector() -> None:
    signer = WebhookSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _signed(settings: Settings) -> Settings:
    data = settings.model_dump()
    data["callback"]["signing_secret"] = SECRET
    return settings_from_mapping(data)


def test_every_attempt_is_signed_with_a_stable_id(settings: Settings, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    with CallbackManager(_signed(settings)) as manager:
        for _ in range(2):
            assert manager.send_callback(receiver.url(), {"taskId": task_id, "data": None, "error": None})
    first, second = receiver.wait_for(task_id, count=2)
    for received in (first, second):
        Webhook(SECRET).verify(received.body, received.headers)  # raises when it does not verify
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{task_id}"


def test_a_changed_body_does_not_verify(settings: Settings, receiver: CallbackReceiver) -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    task_id = str(uuid.uuid4())
    with CallbackManager(_signed(settings)) as manager:
        manager.send_callback(receiver.url(), {"taskId": task_id})
    (received,) = receiver.wait_for(task_id)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(received.body.replace(b"}", b',"x":1}'), received.headers)


def test_unsigned_without_a_secret(settings: Settings, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    with CallbackManager(settings) as manager:
        manager.send_callback(receiver.url(), {"taskId": task_id})
    assert not any(name.startswith("webhook-") for name in receiver.wait_for(task_id)[0].headers)


@pytest.mark.parametrize("secret", ["not-base64!", "whsec_c2hvcnQ="])
def test_an_unusable_secret_is_a_config_error(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("XRAY__CALLBACK__SIGNING_SECRET", secret)
    with pytest.raises(ConfigError, match="callback.signing_secret"):
        load_settings()


@pytest.fixture(scope="module")
def signed_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(
        redis_server, tmp_path_factory, XRAY__CALLBACK__SIGNING_SECRET=SECRET, XRAY__CALLBACK__RETRY_SCHEDULE="[0.5]"
    )
    stack.start_all()
    yield stack
    stack.stop()


def test_the_service_signs_its_callbacks(signed_stack: Stack, receiver: CallbackReceiver) -> None:
    task_id = str(uuid.uuid4())
    response = signed_stack.post_analyze(
        {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes())
    )
    assert response.status_code == 202
    (received,) = receiver.wait_for(task_id)
    payload = Webhook(SECRET).verify(received.body, received.headers)
    assert payload["taskId"] == task_id
    assert SECRET not in signed_stack.log("worker") + signed_stack.log("delivery")


def test_retries_keep_the_webhook_id_and_sign_afresh(signed_stack: Stack, receiver: CallbackReceiver) -> None:
    receiver.replies["/once-down"] = [Reply(503), Reply(200)]
    task_id = str(uuid.uuid4())
    response = signed_stack.post_analyze(
        {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url("/once-down")}, ("x.jpg", jpeg_bytes())
    )
    assert response.status_code == 202
    first, second = receiver.wait_for(task_id, count=2)
    for attempt in (first, second):
        Webhook(SECRET).verify(attempt.body, attempt.headers)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
