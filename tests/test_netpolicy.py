"""The callback network policy: a table of addresses both ways, at submit and at send time."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator

import pytest

from server.core.callback import CallbackManager
from server.core.netpolicy import CallbackPolicy, CallbackRefused
from server.embedded_redis import EmbeddedRedis
from server.settings import Settings, settings_from_mapping
from tests.conftest import new_stack, running_api
from tests.support.images import jpeg_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until

ALWAYS_REFUSED = [
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "fe80::1",
    "0.0.0.0",  # noqa: S104 - an address under test, not a bind
    "::",
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "::ffff:0.0.0.0",
]
PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::808:808"]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
def test_always_refused_whatever_the_configuration(address: str) -> None:
    permissive = CallbackPolicy.of(True, [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")], ["h"])
    assert permissive.refusal("h", _ip(address)) is not None
    assert CallbackPolicy().refusal("h", _ip(address)) is not None


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_only_when_allowed(address: str) -> None:
    assert CallbackPolicy().refusal("receiver", _ip(address)) is not None
    assert CallbackPolicy.of(True, [], []).refusal("receiver", _ip(address)) is None
    assert CallbackPolicy.of(False, [], ["Receiver."]).refusal("receiver", _ip(address)) is None
    assert CallbackPolicy.of(False, [], ["other"]).refusal("receiver", _ip(address)) is not None


def test_allowed_cidrs_admit_only_their_range() -> None:
    policy = CallbackPolicy.of(False, [ipaddress.ip_network("10.20.0.0/16")], [])
    assert policy.refusal("x", _ip("10.20.3.4")) is None
    assert policy.refusal("x", _ip("::ffff:10.20.3.4")) is None
    assert policy.refusal("x", _ip("10.21.0.1")) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert CallbackPolicy().refusal("x", _ip(address)) is None


def test_every_resolved_address_must_pass() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(CallbackRefused, match="10.0.0.5"):
        CallbackPolicy().check_url("https://mixed.example/cb", resolve)


def _policy_settings(settings: Settings, allow_private: bool, **extra: object) -> Settings:
    data = settings.model_dump()
    data["callback"].update(allow_private_networks=allow_private, **extra)
    return settings_from_mapping(data)


def test_the_sender_connects_to_the_address_it_checked(settings: Settings, receiver: CallbackReceiver) -> None:
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])  # a second lookup would be rebound

    def resolve(host: str, port: int) -> list[str]:
        return next(answers)

    policy_settings = _policy_settings(settings, False, allowed_hosts=["receiver.test"])
    task_id = str(uuid.uuid4())
    with CallbackManager(policy_settings, resolve=resolve) as manager:
        attempt = manager.deliver(f"http://receiver.test:{receiver.port}/cb", {"taskId": task_id})
    assert attempt.delivered, attempt.error
    (received,) = receiver.wait_for(task_id)
    assert received.headers["host"] == f"receiver.test:{receiver.port}"


def test_the_sender_refuses_again_at_send_time(settings: Settings, receiver: CallbackReceiver) -> None:
    with CallbackManager(_policy_settings(settings, False)) as manager:
        attempt = manager.deliver(receiver.url(), {"taskId": "x"})
    assert not attempt.delivered
    assert attempt.error and "network policy" in attempt.error
    assert receiver.received == []


@pytest.fixture(scope="module")
def strict_api(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_api(redis_server, tmp_path_factory, XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS="false") as stack:
        yield stack


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/cb",
        "http://[::1]:9/cb",
        "http://[::ffff:127.0.0.1]:9/cb",
        "http://localhost:9/cb",
        "http://10.0.0.1/cb",
    ],
)
def test_submit_refuses_with_400_10008_and_leaves_nothing(strict_api: Stack, url: str) -> None:
    before = (strict_api.task_keys(), strict_api.stored_files(), strict_api.queued_messages())
    response = strict_api.post_analyze(
        {"taskId": str(uuid.uuid4()), "taskType": "pano", "callbackUrl": url}, ("x.jpg", jpeg_bytes())
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 10008
    assert (strict_api.task_keys(), strict_api.stored_files(), strict_api.queued_messages()) == before


def test_a_delivery_service_with_a_stricter_policy_refuses_at_send_time(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__CALLBACK__RETRY_SCHEDULE="[0.1]")
    stack.start_api()  # development policy: loopback allowed at submit
    stack.start_worker()
    stack.settings["XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS"] = "false"
    stack.start_delivery()
    try:
        task_id = str(uuid.uuid4())
        response = stack.post_analyze(
            {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes())
        )
        assert response.status_code == 202

        wait_until(lambda: stack.view(task_id)["callback"]["status"] == "failed")
        assert receiver.received == []
        assert "network policy" in stack.log("delivery")
    finally:
        stack.stop()


def test_hosts_are_checked_as_httpx_will_send_them() -> None:
    seen: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["93.184.216.34"]

    host, port, _ = CallbackPolicy().check_url("https://straße.de/cb", resolve)
    assert host == seen[0] == "xn--strae-oqa.de"  # IDNA 2008, not IDNA 2003's "strasse.de"
    assert port == 443


def test_site_local_ipv6_is_internal() -> None:
    assert CallbackPolicy().refusal("x", _ip("fec0::1")) is not None
