"""HTTPS callbacks to a pinned address: the certificate is checked against the name, not the IP."""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from server import ConfigError
from server.core.callback import CallbackManager
from server.settings import Settings, load_settings, settings_from_mapping


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_receiver(ca: trustme.CA) -> Iterator[int]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names only `receiver.test`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("receiver.test").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _trusting(settings: Settings, ca: trustme.CA, tmp_path: Path) -> Settings:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    data = settings.model_dump()
    data["callback"].update(ca_bundle=bundle, allow_private_networks=False, allowed_hosts=["receiver.test"])
    return settings_from_mapping(data)


def _resolve(host: str, port: int) -> list[str]:
    return {"receiver.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}[host]


def test_the_certificate_is_checked_against_the_callback_host(
    settings: Settings, ca: trustme.CA, tls_receiver: int, tmp_path: Path
) -> None:
    with CallbackManager(_trusting(settings, ca, tmp_path), resolve=_resolve) as manager:
        attempt = manager.deliver(f"https://receiver.test:{tls_receiver}/cb", {"taskId": str(uuid.uuid4())})
    assert attempt.delivered, attempt.error
    assert attempt.status_code == 204
    headers = _Recorder.seen[-1]
    assert headers["host"] == f"receiver.test:{tls_receiver}"


def test_a_certificate_for_another_name_is_refused(
    settings: Settings, ca: trustme.CA, tls_receiver: int, tmp_path: Path
) -> None:
    trusting = _trusting(settings, ca, tmp_path)
    data = trusting.model_dump()
    data["callback"]["allowed_hosts"] = ["receiver.test", "other.test"]
    with CallbackManager(settings_from_mapping(data), resolve=_resolve) as manager:
        # A kept-alive connection checked for one name is never reused for another on the same address.
        assert manager.deliver(f"https://receiver.test:{tls_receiver}/cb", {"taskId": "x"}).delivered
        attempt = manager.deliver(f"https://other.test:{tls_receiver}/cb", {"taskId": "x"})
    assert not attempt.delivered
    assert attempt.error and "certificate" in attempt.error.lower()


def test_an_untrusted_ca_is_refused(settings: Settings, tls_receiver: int) -> None:
    data = settings.model_dump()
    data["callback"].update(allow_private_networks=False, allowed_hosts=["receiver.test"])
    with CallbackManager(settings_from_mapping(data), resolve=_resolve) as manager:
        attempt = manager.deliver(f"https://receiver.test:{tls_receiver}/cb", {"taskId": "x"})
    assert not attempt.delivered


def test_a_missing_ca_bundle_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XRAY__CALLBACK__CA_BUNDLE", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigError, match="callback.ca_bundle"):
        load_settings()
