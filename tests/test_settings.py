from __future__ import annotations

from pathlib import Path

import pytest

from server import ConfigError, load_config
from server.settings import load_settings

CLEAN_ENV = ("XRAY_CONFIG", "XRAY__")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(CLEAN_ENV):
            monkeypatch.delenv(name)


def test_load_config_returns_the_seed_sections_as_a_plain_dict() -> None:
    config = load_config()
    assert isinstance(config, dict)
    for section in ("redis", "celery", "api", "worker", "callback", "task"):
        assert isinstance(config[section], dict), section
    assert config["redis"]["host"] == "localhost"
    assert config["api"]["port"] == 8000
    assert config["task"]["result_ttl"] == 86400
    assert config["pipelines"]["mock_delay_s"] == 2


def test_environment_overrides_every_kind_of_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__API__PORT", "8001")
    monkeypatch.setenv("XRAY__API__UPLOAD_DIR", "/srv/xray")
    monkeypatch.setenv("XRAY__REDIS__PORT", "6380")
    monkeypatch.setenv("XRAY__CELERY__BROKER_URL", "amqp://guest:guest@localhost:5672//")
    monkeypatch.setenv("XRAY__WORKER__CONCURRENCY", "4")
    monkeypatch.setenv("XRAY__WORKER__QUEUES", '["ceph"]')
    monkeypatch.setenv("XRAY__PIPELINES__MOCK_DELAY_S", "0")
    settings = load_settings()
    assert settings.api.port == 8001
    assert settings.api.upload_dir == Path("/srv/xray")
    assert settings.redis.port == 6380
    assert settings.broker_url == "amqp://guest:guest@localhost:5672//"
    assert settings.worker.concurrency == 4
    assert settings.worker.queues == ["ceph"]
    assert settings.pipelines.mock_delay_s == 0
    # Keys not overridden keep the file's values.
    assert settings.api.host == "0.0.0.0"  # noqa: S104 - the file's value


def test_broker_defaults_to_the_redis_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__REDIS__HOST", "cache.internal")
    monkeypatch.setenv("XRAY__REDIS__PORT", "6390")
    monkeypatch.setenv("XRAY__REDIS__DB", "3")
    assert load_settings().broker_url == "redis://cache.internal:6390/3"


def test_xray_config_selects_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("api:\n  port: 9123\ntask:\n  result_ttl: 60\n")
    monkeypatch.setenv("XRAY_CONFIG", str(other))
    config = load_config()
    assert config["api"]["port"] == 9123
    assert config["task"]["result_ttl"] == 60
    assert config["redis"]["port"] == 6379  # defaults fill what the file leaves out


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("XRAY__API__PORT", "eighty", "api.port"),
        ("XRAY__API__PORT", "70000", "api.port"),
        ("XRAY__WORKER__CONCURRENCY", "0", "worker.concurrency"),
        ("XRAY__WORKER__QUEUES", '["xray"]', "worker.queues"),
        ("XRAY__CALLBACK__TIMEOUT", "-1", "callback.timeout"),
        ("XRAY__API__PROT", "8000", "XRAY__API__PROT"),
        ("XRAY__APIX__PORT", "8000", "XRAY__APIX__PORT"),
        ("XRAY__WORKER__QUEUES", "ceph", "worker.queues"),
        ("XRAY__WORKER__QUEUES", "[ceph", "worker.queues"),
        ("XRAY__PIPELINES__PANO__BACKEND", "tensorrt", "pipelines.pano.backend"),
        ("XRAY__PIPELINES__CEPH__BACKEND", "onnx", "pipelines.ceph"),
        ("XRAY__PIPELINES__PANO__CLASS", "not a class", "pipelines.pano.class"),
        ("XRAY__PIPELINES__PANO__MODLE", "m.onnx", "XRAY__PIPELINES__PANO__MODLE"),
        ("XRAY__PIPELINES__PANO__OPTIONS", "{oops", "pipelines.pano.options"),
        ("XRAY__PIPELINES__DENTAL__BACKEND", "mock", "XRAY__PIPELINES__DENTAL__BACKEND"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert named in message
    assert message.count("\n") == 0


def test_a_bad_file_names_the_key_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis:\n  port: [1, 2]\n")
    monkeypatch.setenv("XRAY_CONFIG", str(bad))
    with pytest.raises(ConfigError, match=r"redis\.port.*bad\.yaml"):
        load_settings()


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings()
    broken = tmp_path / "broken.yaml"
    broken.write_text("api: [unclosed\n")
    monkeypatch.setenv("XRAY_CONFIG", str(broken))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings()


def test_time_limits_must_nest_inside_the_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__WORKER__TASK_SOFT_TIME_LIMIT_S", "400")
    with pytest.raises(ConfigError, match="task_soft_time_limit_s") as raised:
        load_settings()
    assert "(root)" not in str(raised.value)
    monkeypatch.setenv("XRAY__WORKER__TASK_SOFT_TIME_LIMIT_S", "10")
    monkeypatch.setenv("XRAY__CELERY__VISIBILITY_TIMEOUT_S", "100")
    with pytest.raises(ConfigError, match="visibility_timeout_s"):
        load_settings()


def test_secrets_do_not_show_when_the_config_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__REDIS__PASSWORD", "s3cret-value")
    config = load_config()
    assert "s3cret-value" not in repr(config)
    assert load_settings().redis.url().startswith("redis://:s3cret-value@")


def test_each_task_type_selects_its_pipeline_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__PIPELINES__PANO__BACKEND", "onnx")
    monkeypatch.setenv("XRAY__PIPELINES__PANO__MODEL", "models/pano.onnx")
    monkeypatch.setenv("XRAY__PIPELINES__CEPH__BACKEND", "onnx")
    monkeypatch.setenv("XRAY__PIPELINES__CEPH__MODEL", "/srv/models/ceph.onnx")
    assert load_settings().pipelines.ceph.model == Path("/srv/models/ceph.onnx")
    monkeypatch.setenv("XRAY__PIPELINES__CEPH__CLASS", "my_models.ceph:MyCeph")
    monkeypatch.setenv("XRAY__PIPELINES__CEPH__OPTIONS", '{"weights": "/w.bin"}')
    pipelines = load_settings().pipelines
    assert pipelines.pano.kind == "onnx"
    assert pipelines.pano.model is not None and pipelines.pano.model.is_absolute()
    assert pipelines.pano.model.parts[-2:] == ("models", "pano.onnx")
    ceph = pipelines.for_task_type("ceph")
    assert (ceph.kind, ceph.class_, ceph.options) == ("class", "my_models.ceph:MyCeph", {"weights": "/w.bin"})


def test_the_s3_storage_backend_is_configured_from_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAY__STORAGE__BACKEND", "s3")
    monkeypatch.setenv("XRAY__STORAGE__S3__BUCKET", "xray-images")
    monkeypatch.setenv("XRAY__STORAGE__S3__PREFIX", "clinic-a/")
    monkeypatch.setenv("XRAY__STORAGE__S3__ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("XRAY__STORAGE__S3__ADDRESSING_STYLE", "path")
    monkeypatch.setenv("XRAY__STORAGE__S3__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("XRAY__STORAGE__S3__ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("XRAY__STORAGE__S3__SECRET_ACCESS_KEY", "s3cret-key-value")
    storage = load_settings().storage
    assert storage.backend == "s3"
    s3 = storage.s3
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("xray-images", "clinic-a/", "http://minio.internal:9000")
    assert (s3.addressing_style, s3.max_attempts, s3.region) == ("path", 5, "us-east-1")
    assert s3.secret_access_key is not None and s3.secret_access_key.get_secret_value() == "s3cret-key-value"
    assert "s3cret-key-value" not in repr(load_config())


def test_the_shipped_file_keeps_local_storage_and_no_credentials() -> None:
    s3 = load_settings().storage.s3
    assert load_settings().storage.backend == "local"
    assert (s3.bucket, s3.access_key_id, s3.secret_access_key, s3.endpoint_url) == (None, None, None, None)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"XRAY__STORAGE__BACKEND": "s3"}, "storage.s3.bucket"),
        ({"XRAY__STORAGE__BACKEND": "gcs"}, "storage.backend"),
        ({"XRAY__STORAGE__S3__BUKET": "x"}, "XRAY__STORAGE__S3__BUKET"),
        ({"XRAY__STORAGE__S3__BUCKET": "a/b"}, "storage.s3.bucket"),
        ({"XRAY__STORAGE__S3__PREFIX": "/images/"}, "storage.s3.prefix"),
        ({"XRAY__STORAGE__S3__ENDPOINT_URL": "minio:9000"}, "storage.s3.endpoint_url"),
        ({"XRAY__STORAGE__S3__ADDRESSING_STYLE": "dns"}, "storage.s3.addressing_style"),
        ({"XRAY__STORAGE__S3__MAX_ATTEMPTS": "0"}, "storage.s3.max_attempts"),
        ({"XRAY__STORAGE__S3__ACCESS_KEY_ID": "AKIAEXAMPLE"}, "storage.s3.secret_access_key"),
        ({"XRAY__STORAGE__S3__SECRET_ACCESS_KEY": "AKIAEXAMPLE"}, "storage.s3.access_key_id"),
        ({"XRAY__STORAGE__BACKEND": "s3", "XRAY__STORAGE__S3__SECRET_ACCESS_KEY": "AKIAEXAMPLE"}, "storage.s3"),
    ],
)
def test_a_bad_storage_setting_is_one_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert named in message
    assert message.count("\n") == 0
    assert "AKIAEXAMPLE" not in message
