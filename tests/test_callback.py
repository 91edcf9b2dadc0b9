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
    assert attempt.error and "cannot connect" in attempt.error and "refused" in attempt.error


def test_slow_receiver_times_out_at_the_configured_timeout(settings: Settings, receiver: CallbackReceiver) -> None:
    receiver.replies["/slow"] = Reply(200, delay_s=settings.callback.timeout + 1)
    with CallbackManager(settings) as manager:
        attempt = manager.deliver(receiver.url("/slow"), {"taskId": "x"})
    assert not attempt.delivered
    assert attempt.error and "timed out" in attempt.error


def test_one_client_is_reused_across_callbacks(settings: Settings, receiver: CallbackReceiver) -> None:
    with CallbackManager(settings) as manager:
        for _ in range(3):
            assert manager.send_callback(receiver.url(), {"taskId": str(uuid.uuid4())})
        # All three went over one kept-alive connection.
        assert len({r.peer for r in receiver.received}) == 1


def test_cookies_a_receiver_sets_are_never_sent_back(settings: Settings, receiver: CallbackReceiver) -> None:
    receiver.replies["/cb"] = Reply(200, headers={"Set-Cookie": "session=tenant-a; Path=/"})
    by_name = receiver.url("/cb").replace("127.0.0.1", "localhost")  # cookie jars ignore IP hosts
    with CallbackManager(settings) as manager:
        for _ in range(2):
            assert manager.send_callback(by_name, {"taskId": str(uuid.uuid4())})
    assert [r.headers.get("cookie") for r in receiver.received] == [None, None]


def test_deliver_reports_instead_of_raising_for_an_unsendable_url(settings: Settings) -> None:
    with CallbackManager(settings) as manager:
        for url in ("http://a..b/cb", "not a url at all", "http://xn--a/cb"):
            attempt = manager.deliver(url, {"taskId": "x"})
            assert not attempt.delivered
            assert attempt.error


def test_a_huge_response_body_is_not_buffered(settings: Settings) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hung_up = threading.Event()

    class Flood(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(50 * 16):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                hung_up.set()  # the sender stopped reading after what it needed, as it should

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with CallbackManager(settings) as manager:
            attempt = manager.deliver(f"http://127.0.0.1:{server.server_address[1]}/", {"taskId": "x"})
        assert attempt.delivered
        assert hung_up.wait(10), "the sender read the whole 50 MB answer"
    finally:
        server.shutdown()
        server.server_close()


def test_retry_after_parsing() -> None:
    from server.core.retry import next_delay, parse_retry_after

    assert parse_retry_after("120", 0.0) == 120.0
    assert parse_retry_after("²", 0.0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None
    assert next_delay(1, [10.0], 3.0) == 3.0
    assert next_delay(1, [10.0], 10**9) == 6 * 3600.0
    assert next_delay(2, [10.0], None) is None
    assert 8.0 <= (next_delay(1, [10.0], None) or 0) <= 12.0
