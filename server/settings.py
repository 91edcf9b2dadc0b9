"""Typed configuration: `config.yaml` (or `$XRAY_CONFIG`) overlaid by `XRAY__SECTION__KEY` variables.

The environment wins over the file. Lists and maps are given as JSON in the environment
(`XRAY__WORKER__QUEUES='["ceph"]'`). Every section rejects unknown keys, so a typo in a file
or a variable name is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_origin

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


class StorageSettings(_Section):
    backend: Literal["local"] = "local"
    keep_images: bool = False


class LimitsSettings(_Section):
    max_upload_mb: float = Field(default=50, gt=0)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class PipelinesSettings(_Section):
    mock_delay_s: float = Field(default=2.0, ge=0, le=3600)


class Settings(BaseSettings):
    """The whole configuration; build it with `load_settings()` or `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    redis: RedisSettings = RedisSettings()
    celery: CelerySettings = CelerySettings()
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    callback: CallbackSettings = CallbackSettings()
    task: TaskSettings = TaskSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    pipelines: PipelinesSettings = PipelinesSettings()

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


def _check_environment() -> None:
    """Name the variable when an `XRAY__…` name is unknown or a list/map value is not JSON."""
    sections = Settings.model_fields
    for name, value in os.environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        section = sections.get(parts[0])
        if section is None or len(parts) > 2:
            known = ", ".join(f"{ENV_PREFIX}{s.upper()}__…" for s in sections)
            raise ConfigError(f"invalid configuration: unknown variable {name} (known: {known})")
        model = section.annotation
        if len(parts) == 1:
            field_type: Any = dict  # a whole section as one JSON object
        else:
            field = (
                model.model_fields.get(parts[1]) if isinstance(model, type) and issubclass(model, BaseModel) else None
            )
            if field is None:
                raise ConfigError(f"invalid configuration: {name} names no key of section {parts[0]!r}")
            field_type = get_origin(field.annotation) or field.annotation
        if field_type in (list, dict):
            try:
                json.loads(value)
            except ValueError:
                where = parts[0] if len(parts) == 1 else f"{parts[0]}.{parts[1]}"
                raise ConfigError(
                    f"invalid configuration: {where}: {name} must be JSON, e.g. {name}='[\"ceph\"]' or '{{...}}'"
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
