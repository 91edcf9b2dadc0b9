"""The production profile, CORS and log settings: refused or applied at start-up."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.embedded_redis import EmbeddedRedis
from server.logsetup import configure_logging
from server.settings import PROJECT_ROOT, ConfigError, load_settings
from tests.conftest import running_api
from tests.support.stack import Stack, wait_until

PRODUCTION_READY = {
    "XRAY__APP__ENV": "production",
    "XRAY__SECURITY__API_KEYS": '{"clinic-a": "a-key-0123456789abcdef"}',
    "XRAY__CALLBACK__SIGNING_SECRET": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS": "false",
    "XRAY__PIPELINES__PANO__CLASS": "tests.support.custom_pipeline:EchoPipeline",
    "XRAY__PIPELINES__CEPH__BACKEND": "onnx",
    "XRAY__PIPELINES__CEPH__MODEL": "/models/ceph.onnx",
}


def test_a_complete_production_configuration_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_READY.items():
        monkeypatch.setenv(name, value)
    assert load_settings().app.env == "production"


@pytest.mark.parametrize(
    ("drop", "override", "complaint"),
    [
        ("XRAY__PIPELINES__PANO__CLASS", {}, "pipelines.pano is the mock"),
        ("XRAY__SECURITY__API_KEYS", {}, "no API keys"),
        ("XRAY__CALLBACK__SIGNING_SECRET", {}, "callbacks are unsigned"),
        ("", {"XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS": "true"}, "callback.allow_private_networks admits"),
    ],
)
def test_production_refuses_what_only_development_should_run_with(
    monkeypatch: pytest.MonkeyPatch, drop: str, override: dict[str, str], complaint: str
) -> None:
    for name, value in {**PRODUCTION_READY, **override}.items():
        if name != drop:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=complaint) as raised:
        load_settings()
    assert "\n" not in str(raised.value)


def test_production_allows_private_receivers_named_in_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_READY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XRAY__CALLBACK__ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("XRAY__CALLBACK__ALLOWED_CIDRS", '["10.20.0.0/16"]')
    assert load_settings().callback.allowed_cidrs


def test_a_process_refuses_to_start_in_production_with_the_shipped_development_config() -> None:
    env = {"PATH": "/usr/bin:/bin", "XRAY__APP__ENV": "production"}
    done = subprocess.run(
        [sys.executable, "main_api.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    for complaint in ("is the mock", "no API keys", "unsigned", "allow_private_networks"):
        assert complaint in message


def test_cors_wildcard_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__API__CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("XRAY__API__CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigError, match="api.cors_origins"):
        load_settings()


@pytest.fixture(scope="module")
def cors_api(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_api(
        redis_server, tmp_path_factory, XRAY__API__CORS_ORIGINS='["https://viewer.clinic.example"]'
    ) as stack:
        yield stack


def test_cors_answers_only_the_configured_origins(cors_api: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    url = f"{cors_api.base_url}/api/v1/analyze"
    allowed = httpx.options(url, headers={"Origin": "https://viewer.clinic.example", **preflight})
    refused = httpx.options(url, headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://viewer.clinic.example"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in refused.headers


def test_without_cors_origins_no_cors_headers(stack: Stack) -> None:
    answer = httpx.get(f"{stack.base_url}/health", headers={"Origin": "https://viewer.clinic.example"})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        configure_logging("info", "json")
        logging.getLogger("server.test").info("task %s accepted", "t-1", extra={"taskId": "t-1", "tenant": "a"})
    finally:
        configure_logging("warning")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert (entry["message"], entry["level"], entry["taskId"], entry["tenant"]) == (
        "task t-1 accepted",
        "INFO",
        "t-1",
        "a",
    )


def test_each_request_gets_one_access_log_line(cors_api: Stack) -> None:
    secret, marker = uuid.uuid4().hex, uuid.uuid4().hex
    httpx.get(f"{cors_api.base_url}/livez?secret={secret}")
    httpx.get(f"{cors_api.base_url}/api/v1/task/{marker}")
    wait_until(lambda: f"/api/v1/task/{marker} 404" in cors_api.log("api"))
    log = cors_api.log("api")
    assert secret not in log  # the path is logged, never the query string
    lines = log.splitlines()
    task_line = next(n for n, line in enumerate(lines) if f"GET /api/v1/task/{marker} 404 " in line)
    # The last request before it, /livez with its query, was logged too (by path alone).
    assert any("server.access: GET /livez 200 " in line for line in lines[max(0, task_line - 3) : task_line])
    assert log.count(f"GET /api/v1/task/{marker} 404 ") == 1
