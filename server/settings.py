"""Typed configuration: `config.yaml` (or `$XRAY_CONFIG`) overlaid by `XRAY__SECTION__KEY` variables.

The environment wins over the file. Lists and maps are given as JSON in the environment
(`XRAY__WORKER__QUEUES='["ceph"]'`). Every section rejects unknown keys, so a typo in a file
or a variable name is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from server.core.signing import decode_secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config.yaml"
CONFIG_FILE_VARIABLE = "XRAY_CONFIG"
ENV_PREFIX = "XRAY__"
TASK_TYPES = ("pano", "ceph")


class ConfigError(Exception):
    """The configuration file or an `XRAY__…` variable holds a value the service cannot use."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(_Section):
    host: str = "localhost"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    password: SecretStr | None = None
    key_prefix: str = Field(default="xray:", min_length=1)
    socket_timeout_s: float = Field(default=5.0, gt=0)

    def url(self, db: int | None = None) -> str:
        auth = f":{self.password.get_secret_value()}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db if db is None else db}"


class CelerySettings(_Section):
    # None means "the server of the `redis` section", so pointing the service at another Redis
    # is one setting, not three.
    broker_url: str | None = None
    result_backend: str | None = None
    # Redis transport: an unacknowledged message is handed out again after this many seconds.
    # It must exceed the hard time limit or a long task would run twice at once.
    visibility_timeout_s: int = Field(default=3600, ge=1)


class ApiSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces unless told otherwise
    port: int = Field(default=8000, ge=1, le=65535)
    upload_dir: Path = Path("./tmp/uploads")
    workers: int = Field(default=1, ge=1, le=64)
    loglevel: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Browser origins allowed to call the API (e.g. a clinic's web viewer); none: no CORS headers.
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> ApiSettings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "api.cors_origins '*' with api.cors_allow_credentials would let any site act with a "
                "user's credentials; list the origins"
            )
        return self


class WorkerSettings(_Section):
    concurrency: int = Field(default=2, ge=1, le=256)
    loglevel: Literal["critical", "error", "warning", "info", "debug"] = "info"
    queues: list[Literal["pano", "ceph"]] = Field(default=["pano", "ceph"], min_length=1)
    task_soft_time_limit_s: int = Field(default=300, ge=1)
    task_time_limit_s: int = Field(default=360, ge=1)
    # On SIGTERM, running tasks may finish within this; then they go back to the queue.
    shutdown_grace_s: float = Field(default=10.0, ge=0, le=3600)
    # A message redelivered after its worker died counts as another attempt; past this the
    # task fails with 12001 instead of taking workers down forever.
    max_attempts: int = Field(default=3, ge=1)
    # How long a pool process may take to load its pipelines (a large model on a GPU takes a while).
    pipeline_load_timeout_s: float = Field(default=300.0, gt=0)


class CallbackSettings(_Section):
    timeout: float = Field(default=10.0, gt=0, le=300)
    # Standard Webhooks secret (`whsec_<base64 key>`); from the environment only. None: unsigned.
    signing_secret: SecretStr | None = None
    # Loopback and private addresses are refused unless allowed here (link-local, multicast and
    # the like are refused always); see server.core.netpolicy.
    allow_private_networks: bool = False
    allowed_cidrs: list[IPvAnyNetwork] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    # Seconds between attempts after the first failed one; after the last, the callback is failed
    # (and can be replayed with POST /api/v1/task/{taskId}/callback/retry).
    retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0], max_length=50
    )
    delivery_concurrency: int = Field(default=16, ge=1, le=512)
    # PEM file of the CA(s) to trust for https callbacks (a hospital's own CA); None: certifi's.
    ca_bundle: Path | None = None

    @field_validator("ca_bundle")
    @classmethod
    def _bundle_is_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _positive_delays(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("every retry delay must be a positive number of seconds")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _secret_is_usable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_secret(value.get_secret_value())
        return value


class TaskSettings(_Section):
    result_ttl: int = Field(default=86400, ge=1)


# Loose on purpose: AWS wants 3-63 lowercase characters, other stores allow more; this refuses only
# names no store takes (and "/", which would change the request path).
_BUCKET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$"


class S3Settings(_Section):
    """An S3-compatible object store (AWS S3, MinIO, Ceph RGW, …) for `storage.backend: s3`."""

    bucket: str | None = Field(default=None, pattern=_BUCKET_NAME)
    # Every object's key is this followed by a generated name; "" puts images at the bucket's top.
    prefix: str = Field(default="images/", max_length=512)
    # None: AWS itself (the region's endpoint); set it for MinIO, Ceph and other stores.
    endpoint_url: str | None = None
    region: str = Field(default="us-east-1", min_length=1)
    # From the environment only; None (both): boto3's own chain (AWS_* variables, instance role, …).
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # path: http://host/bucket/key, which most self-hosted stores need; auto lets boto3 choose.
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Tries of one request, the first included, before the store counts as unavailable.
    max_attempts: int = Field(default=3, ge=1, le=20)

    @field_validator("prefix")
    @classmethod
    def _no_leading_slash(cls, value: str) -> str:
        if value.startswith("/"):  # S3 keeps it, giving keys like "/images/…" that tools show oddly
            raise ValueError("must not start with '/' (e.g. images/)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host, e.g. http://minio:9000")
        return value


class StorageSettings(_Section):
    # local: files under api.upload_dir (one machine, or a shared mount); s3: the bucket below.
    backend: Literal["local", "s3"] = "local"
    keep_images: bool = False
    s3: S3Settings = S3Settings()

    # Checks across keys of `s3` live here, not in S3Settings: an error there would be reported with
    # the whole `s3` section as its input, credentials included.
    @model_validator(mode="after")
    def _s3_is_usable(self) -> StorageSettings:
        if self.backend == "s3" and self.s3.bucket is None:
            raise ValueError("storage.backend s3 needs storage.s3.bucket (XRAY__STORAGE__S3__BUCKET)")
        if (self.s3.access_key_id is None) != (self.s3.secret_access_key is None):
            raise ValueError(
                "set both storage.s3.access_key_id and storage.s3.secret_access_key, or neither "
                "(boto3's default credentials)"
            )
        return self


class LimitsSettings(_Section):
    max_upload_mb: float = Field(default=50, gt=0)  # per image
    max_batch: int = Field(default=32, ge=1, le=1000)  # tasks per POST /api/v1/batch
    max_batch_mb: float = Field(default=200, gt=0)  # a whole batch request

    @property
    def max_batch_bytes(self) -> int:
        return int(self.max_batch_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class AppSettings(_Section):
    # production: refuse to start with anything only fit for development (see Settings below).
    env: Literal["development", "production"] = "development"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line, for log shippers


TENANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MIN_API_KEY_LENGTH = 16


class SecuritySettings(_Section):
    # Tenant name → API key; from the environment only (XRAY__SECURITY__API_KEYS='{"clinic-a": "…"}').
    # None configured: the API is open (and says so at start-up).
    api_keys: dict[str, SecretStr] = {}

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        seen: set[str] = set()
        for tenant, key in keys.items():
            if not re.fullmatch(TENANT_NAME, tenant):
                raise ValueError(f"tenant name {tenant!r}: letters, digits, '_', '.', '-', at most 64")
            value = key.get_secret_value()
            if len(value) < MIN_API_KEY_LENGTH or not value.strip() == value:
                raise ValueError(f"the key of tenant {tenant!r} must be at least {MIN_API_KEY_LENGTH} characters")
            if value in seen:
                raise ValueError(f"the key of tenant {tenant!r} is also another tenant's: keys must differ")
            seen.add(value)
        return keys


class MetricsSettings(_Section):
    # The API serves GET /metrics itself; workers and delivery processes have no HTTP server of
    # their own, so they export on these ports when set (0: not exported).
    worker_port: int = Field(default=0, ge=0, le=65535)
    delivery_port: int = Field(default=0, ge=0, le=65535)


class PipelineSettings(_Section):
    """One task type's model: the mock, an ONNX model with its card, or a pipeline class of your own."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    backend: Literal["mock", "onnx"] = "mock"
    # "package.module:ClassName": your own pipeline, built with `options` as keyword arguments.
    class_: str | None = Field(default=None, alias="class", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    model: Path | None = None  # the .onnx file; its card (.yaml / .yml / .json) lies beside it
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(default=0, ge=0, le=256)  # ONNX Runtime intra-op threads; 0: its default
    options: dict[str, Any] = {}

    @field_validator("model")
    @classmethod
    def _relative_to_project(cls, path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else PROJECT_ROOT / path

    @model_validator(mode="after")
    def _onnx_needs_a_model(self) -> PipelineSettings:
        if self.backend == "onnx" and self.class_ is None and self.model is None:
            raise ValueError("backend onnx needs model: the path of the .onnx file")
        return self

    @property
    def kind(self) -> str:
        """What runs: "mock", "onnx" or "class"."""
        return "class" if self.class_ else self.backend


class PipelinesSettings(_Section):
    mock_delay_s: float = Field(default=2.0, ge=0, le=3600)
    pano: PipelineSettings = PipelineSettings()
    ceph: PipelineSettings = PipelineSettings()

    def for_task_type(self, task_type: str) -> PipelineSettings:
        selected: PipelineSettings = getattr(self, task_type)
        return selected


class Settings(BaseSettings):
    """The whole configuration; build it with `load_settings()` or `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    app: AppSettings = AppSettings()
    security: SecuritySettings = SecuritySettings()
    redis: RedisSettings = RedisSettings()
    celery: CelerySettings = CelerySettings()
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    callback: CallbackSettings = CallbackSettings()
    task: TaskSettings = TaskSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    pipelines: PipelinesSettings = PipelinesSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init arguments; the environment must override it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _time_limits_nest(self) -> Settings:
        soft, hard = self.worker.task_soft_time_limit_s, self.worker.task_time_limit_s
        if soft >= hard:
            raise ValueError(f"worker.task_soft_time_limit_s ({soft}) must be below worker.task_time_limit_s ({hard})")
        if self.celery.visibility_timeout_s <= hard:
            raise ValueError(
                f"celery.visibility_timeout_s ({self.celery.visibility_timeout_s}) must exceed "
                f"worker.task_time_limit_s ({hard}), or a running task is handed to a second worker"
            )
        return self

    @model_validator(mode="after")
    def _fit_for_production(self) -> Settings:
        if self.app.env != "production":
            return self
        problems = [
            f"pipelines.{task_type} is the mock; configure a model (backend onnx or a class)"
            for task_type in self.worker.queues
            if self.pipelines.for_task_type(task_type).kind == "mock"
        ]
        if not self.security.api_keys:
            problems.append('no API keys; set XRAY__SECURITY__API_KEYS=\'{"<tenant>": "<key>"}\'')
        if self.callback.signing_secret is None:
            problems.append("callbacks are unsigned; set XRAY__CALLBACK__SIGNING_SECRET=whsec_…")
        cfg = self.callback
        if cfg.allow_private_networks and not (cfg.allowed_cidrs or cfg.allowed_hosts):
            problems.append(
                "callback.allow_private_networks admits every internal address; set it to false and list "
                "trusted receivers in callback.allowed_cidrs / callback.allowed_hosts"
            )
        if problems:
            raise ValueError("app.env is production, but: " + "; ".join(problems))
        return self

    @property
    def broker_url(self) -> str:
        return self.celery.broker_url or self.redis.url()


def config_file_path() -> Path:
    return Path(os.environ.get(CONFIG_FILE_VARIABLE) or DEFAULT_CONFIG_FILE)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of sections")
    return data


def _describe(error: Mapping[str, Any], path: Path) -> str:
    location = [str(part) for part in error["loc"]]
    if not location:  # a rule across keys; its message names them
        return str(error["msg"]).removeprefix("Value error, ")
    dotted = ".".join(location)
    variable = ENV_PREFIX + "__".join(part.upper() for part in location)
    value = f" (got {error['input']!r})" if error["type"] != "missing" and len(location) > 1 else ""
    return f"{dotted}: {error['msg']}{value} [set in {path} or {variable}]"


def _field_named(model: Any, name: str) -> Any:
    """The field of a settings model called `name` (or aliased so), or None."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def _check_environment() -> None:
    """Name the variable when an `XRAY__…` name is unknown or a list/map value is not JSON."""
    for name, value in os.environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if _field_named(Settings, parts[0]) is None:
            known = ", ".join(f"{ENV_PREFIX}{s.upper()}__…" for s in Settings.model_fields)
            raise ConfigError(f"invalid configuration: unknown variable {name} (known: {known})")
        model: Any = Settings
        for depth, part in enumerate(parts):
            field = _field_named(model, part)
            if field is None:
                where = ".".join(parts[:depth])
                raise ConfigError(f"invalid configuration: {name} names no key of section {where!r}")
            model = field.annotation
        field_type = get_origin(model) or model
        if isinstance(field_type, type) and issubclass(field_type, BaseModel):
            field_type = dict  # a whole section as one JSON object
        if field_type in (list, dict):
            try:
                json.loads(value)
            except ValueError:
                example = f"{name}='[\"ceph\"]' or '{{...}}'"
                raise ConfigError(
                    f"invalid configuration: {'.'.join(parts)}: {name} must be JSON, e.g. {example}"
                ) from None


def load_settings(path: Path | None = None) -> Settings:
    """Read, overlay and validate the configuration; raise one `ConfigError` naming each bad key."""
    path = path or config_file_path()
    _check_environment()
    try:
        return Settings(**_read_yaml(path))
    except ValidationError as exc:
        details = "; ".join(_describe(error, path) for error in exc.errors())
        raise ConfigError(f"invalid configuration: {details}") from None


@cache
def get_settings() -> Settings:
    """The process's configuration, read once; runtime code uses this, never per request or task."""
    return load_settings()


class _MappingSettings(Settings):
    """Settings validated from a mapping alone: the environment was already applied to it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_mapping(config: Mapping[str, Any]) -> Settings:
    """Validate a plain dict (such as `load_config()` returns) without reading the environment."""
    try:
        return _MappingSettings(**config)
    except ValidationError as exc:
        details = "; ".join(_describe(error, Path("(the mapping given)")) for error in exc.errors())
        raise ConfigError(f"invalid configuration: {details}") from None


def startup_settings() -> Settings:
    """The process's settings; a configuration error ends the process with its one-line message."""
    try:
        return get_settings()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def as_settings(config: Settings | Mapping[str, Any]) -> Settings:
    """Accept the seed's plain-dict configuration wherever a `Settings` is expected."""
    return config if isinstance(config, Settings) else settings_from_mapping(config)
