"""The container deployment (Dockerfile, docker-compose.yml) agrees with the code and the configuration.

No Docker needed: both files are parsed and checked against the repository, the worker's command
line parser and the settings loader that every container runs at start-up.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import main_worker
from server.settings import PROJECT_ROOT, TASK_TYPES, ConfigError, Settings, _check_environment, load_settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
ENTRY_POINTS = ("main_api.py", "main_worker.py", "main_delivery.py")
OUR_SERVICES = ("api", "worker-pano", "worker-ceph", "delivery")
# A commented example in docker-compose.yml: `# XRAY__NAME: value` (the value as YAML).
EXAMPLE_LINE = re.compile(r"^\s*#\s*(XRAY__[A-Z0-9_]+):\s*(\S.*)$")
# `${NAME}`, `${NAME:?message}`, `${NAME:-default}`: taken from the shell or .env by Compose.
INTERPOLATION = re.compile(r"^\$\{(\w+)(?::?[-?][^}]*)?\}$")
# Dummy but valid values for what the production example takes from the shell.
SHELL_VALUES = {
    "XRAY_API_KEYS_JSON": json.dumps({"clinic-a": "dummy-key-0123456789", "clinic-b": "dummy-key-9876543210"}),
    "XRAY_SIGNING_SECRET": "whsec_" + base64.b64encode(bytes(range(32))).decode(),
}


class _Parsed(Exception):
    """Raised in place of loading the settings: main_worker.main got past its argument parsing."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("XRAY__", "XRAY_CONFIG")):
            monkeypatch.delenv(name)


# --- reading the files -------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def our_image(service: dict[str, Any]) -> bool:
    """Built from ./Dockerfile (redis and flower use images of their own)."""
    return "build" in service


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "a continuation line ends the Dockerfile"
    return instructions


def instructions(keyword: str) -> list[str]:
    return [rest for name, rest in dockerfile() if name == keyword]


def image_environment() -> dict[str, str]:
    """The XRAY__ variables the image's ENV sets (every container starts with them)."""
    env: dict[str, str] = {}
    for rest in instructions("ENV"):
        for pair in shlex.split(rest):
            name, _, value = pair.partition("=")
            env[name] = value
    return {name: value for name, value in env.items() if name.startswith("XRAY__")}


def command_of(service: dict[str, Any]) -> list[str]:
    """The service's command, or the image's CMD when it has none."""
    command = service.get("command")
    if command is None:
        cmd = instructions("CMD")
        assert cmd, "the service relies on the image's CMD, but the Dockerfile has none"
        command = json.loads(cmd[-1])
    if isinstance(command, str):
        command = shlex.split(command)
    assert isinstance(command, list)
    return [str(part) for part in command]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(name): str(value) for name, value in env.items()}


def commented_examples() -> dict[str, str]:
    """`# XRAY__NAME: value` lines of docker-compose.yml, with shell references given dummy values."""
    examples: dict[str, str] = {}
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        match = EXAMPLE_LINE.match(line)
        if not match:
            continue
        value = str(yaml.safe_load(match.group(2)))
        reference = INTERPOLATION.match(value)
        if reference:
            assert reference.group(1) in SHELL_VALUES, f"no dummy value for ${{{reference.group(1)}}} in this test"
            value = SHELL_VALUES[reference.group(1)]
        examples[match.group(1)] = value
    return examples


def worker_arguments(service: dict[str, Any]) -> list[str]:
    command = command_of(service)
    assert command[1] == "main_worker.py"
    return command[2:]


def option(arguments: list[str], name: str) -> str | None:
    for index, argument in enumerate(arguments):
        if argument == name:
            return arguments[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return None


def settings_for(monkeypatch: pytest.MonkeyPatch, service: dict[str, Any], extra: dict[str, str]) -> Settings:
    """What the service's process loads: the image's ENV, the service's environment, `extra`, and
    for a worker the queues its `--queues` sets (main_worker passes them on as XRAY__WORKER__QUEUES)."""
    env = image_environment() | environment_of(service) | extra
    if command_of(service)[1] == "main_worker.py":
        queues = option(worker_arguments(service), "--queues")
        if queues:
            env["XRAY__WORKER__QUEUES"] = json.dumps(queues.split(","))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        return load_settings()
    finally:
        for name in env:
            monkeypatch.delenv(name)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match and duration, f"unreadable duration {duration!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


# --- docker-compose.yml ------------------------------------------------------------------------


def test_every_role_runs_an_entry_point_of_this_repository() -> None:
    found = services()
    assert set(OUR_SERVICES) <= set(found), f"missing services: {set(OUR_SERVICES) - set(found)}"
    roles: set[str] = set()
    for name, service in found.items():
        if not our_image(service):
            continue
        command = command_of(service)
        assert command[0] in ("python", "python3"), f"{name}: {command}"
        assert command[1] in ENTRY_POINTS, f"{name}: {command[1]} is not an entry point"
        assert (PROJECT_ROOT / command[1]).is_file(), f"{name}: {command[1]} does not exist"
        roles.add(command[1])
    assert roles == set(ENTRY_POINTS)
    assert command_of(found["api"])[1] == "main_api.py"
    assert command_of(found["delivery"])[1] == "main_delivery.py"


@pytest.fixture
def worker_startup_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main_worker.main` parses its command line, exports what it learnt, then raises `_Parsed`."""

    def parsed() -> Settings:
        raise _Parsed

    monkeypatch.setattr(main_worker, "startup_settings", parsed)
    for name in ("XRAY__WORKER__QUEUES", "REMAP_SIGTERM"):  # main() sets both; undo that afterwards
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("worker_startup_stopped")
def test_worker_command_lines_parse_and_name_real_queues() -> None:
    workers = {name: s for name, s in services().items() if our_image(s) and command_of(s)[1] == "main_worker.py"}
    assert set(workers) >= {"worker-pano", "worker-ceph"}
    served: set[str] = set()
    for name, service in workers.items():
        arguments = worker_arguments(service)
        queues = option(arguments, "--queues")
        assert queues, f"{name}: a worker service names its queues"
        assert set(queues.split(",")) <= set(TASK_TYPES), f"{name}: {queues}"
        served.update(queues.split(","))
        concurrency = option(arguments, "--concurrency")
        assert concurrency is not None and int(concurrency) >= 1, f"{name}: --concurrency {concurrency}"
        # The worker's own parser takes the whole command line (argparse exits 2 otherwise) and
        # hands the queues to the configuration.
        with pytest.raises(_Parsed):
            main_worker.main(arguments)
        assert json.loads(os.environ["XRAY__WORKER__QUEUES"]) == queues.split(",")
        assert load_settings().worker.queues == queues.split(",")  # what main() exported, as loaded
    assert served == set(TASK_TYPES), "every task type needs a worker service"


@pytest.mark.usefixtures("worker_startup_stopped")
def test_worker_parser_refuses_what_it_does_not_know() -> None:
    """The check above can fail: an unknown option never reaches the settings."""
    with pytest.raises(SystemExit) as exited:
        main_worker.main(["--queues", "pano", "--pool-size", "1"])
    assert exited.value.code == 2


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_each_service_environment_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = services()[name]
    assert environment_of(service)["XRAY__REDIS__HOST"] == "redis"
    assert "redis" in services()
    settings = settings_for(monkeypatch, service, {})
    assert settings.app.env == "development"
    assert settings.redis.host == "redis"
    if name == "api":
        assert settings.api.workers == int(environment_of(service)["XRAY__API__WORKERS"]) >= 2
        assert settings.api.port == 8000
        assert any(str(port).endswith(":8000") for port in service["ports"])


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_production_example_loads_as_a_whole(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = commented_examples()
    assert examples.get("XRAY__APP__ENV") == "production"
    service = services()[name]
    settings = settings_for(monkeypatch, service, examples)
    assert settings.app.env == "production"
    assert settings.security.api_keys
    assert settings.callback.signing_secret is not None
    assert settings.callback.allow_private_networks is False, "the shipped config.yaml opens them; production closes"
    for task_type in settings.worker.queues:
        pipeline = settings.pipelines.for_task_type(task_type)
        assert pipeline.kind == "onnx"
        assert str(pipeline.model).startswith("/models/"), "models come from the /models mount"
    # Each part of the block matters: without the keys production refuses to start.
    without_keys = {key: value for key, value in examples.items() if key != "XRAY__SECURITY__API_KEYS"}
    with pytest.raises(ConfigError, match="no API keys"):
        settings_for(monkeypatch, service, without_keys)


def test_every_xray_variable_mentioned_is_one_the_configuration_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    names: set[str] = set()
    for path in (COMPOSE, DOCKERFILE):
        names.update(re.findall(r"XRAY__[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    assert {"XRAY__REDIS__HOST", "XRAY__API__WORKERS", "XRAY__PIPELINES__PANO__MODEL"} <= names
    for name in sorted(names):
        monkeypatch.setenv(name, "[]")  # JSON, so only the name is judged
        _check_environment()
        monkeypatch.delenv(name)
    monkeypatch.setenv("XRAY__API__WORKER", "2")
    with pytest.raises(ConfigError, match="XRAY__API__WORKER"):
        _check_environment()


def test_api_and_workers_share_the_image_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = compose().get("volumes") or {}
    mounts: dict[str, str] = {}
    for name, service in services().items():
        if not our_image(service) or command_of(service)[1] == "main_delivery.py":
            continue
        upload_dir = str(settings_for(monkeypatch, service, {}).api.upload_dir)
        matching = [str(v).split(":") for v in service.get("volumes", []) if str(v).split(":")[1] == upload_dir]
        assert matching, f"{name}: nothing mounted at api.upload_dir {upload_dir}"
        source = matching[0][0]
        assert source in declared, f"{name}: {source} is not a named volume"
        mounts[name] = f"{source}:{upload_dir}"
    assert "api" in mounts and "worker-pano" in mounts and "worker-ceph" in mounts
    assert len(set(mounts.values())) == 1, f"API and workers must mount one volume at one path: {mounts}"


def test_workers_mount_the_models_read_only() -> None:
    for name in ("worker-pano", "worker-ceph"):
        assert "./models:/models:ro" in services()[name]["volumes"], name


def test_redis_keeps_an_append_only_file_and_never_evicts() -> None:
    redis = services()["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = redis["command"]
    tokens = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    assert tokens[0] == "redis-server"
    for flag, value in (("--appendonly", "yes"), ("--appendfsync", "everysec"), ("--maxmemory-policy", "noeviction")):
        assert option(tokens, flag) == value, flag
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"]), "the AOF must outlive the container"


def test_docker_waits_longer_than_the_services_take_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    match = re.search(r"timeout_graceful_shutdown=(\d+)", (PROJECT_ROOT / "main_api.py").read_text(encoding="utf-8"))
    assert match, "main_api.py no longer names its graceful shutdown time"
    assert seconds(services()["api"]["stop_grace_period"]) > int(match.group(1))
    for name in ("worker-pano", "worker-ceph"):
        grace = settings_for(monkeypatch, services()[name], {}).worker.shutdown_grace_s
        assert seconds(services()[name]["stop_grace_period"]) > grace, name
    # The delivery process finishes its attempts in flight, each bounded by callback.timeout.
    timeout = settings_for(monkeypatch, services()["delivery"], {}).callback.timeout
    assert seconds(services()["delivery"]["stop_grace_period"]) > timeout


def test_flower_is_an_optional_monitoring_profile() -> None:
    flower = services()["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert str(flower["image"]).startswith("mher/flower")
    assert "--broker=redis://redis:6379/0" in command_of(flower)
    for name in OUR_SERVICES:
        assert "profiles" not in services()[name], f"{name} must start without a profile"


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_base_user_and_default_command() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    env: dict[str, str] = {}
    for rest in instructions("ENV"):
        for pair in shlex.split(rest):
            name, _, value = pair.partition("=")
            env[name] = value
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert json.loads(instructions("CMD")[-1]) == ["python", "main_api.py"]
    for check in instructions("HEALTHCHECK"):
        assert "curl" not in check and "wget" not in check, "slim images have neither"


def local_top_level_imports(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if (PROJECT_ROOT / n / "__init__.py").is_file() or (PROJECT_ROOT / f"{n}.py").is_file()}


def test_dockerfile_copies_everything_the_entry_points_import() -> None:
    needed = {"config.yaml", *ENTRY_POINTS}
    pending = [PROJECT_ROOT / entry for entry in ENTRY_POINTS]
    seen: set[Path] = set()
    while pending:
        source = pending.pop()
        if source in seen:
            continue
        seen.add(source)
        for name in local_top_level_imports(source):
            package = PROJECT_ROOT / name
            if package.is_dir():
                needed.add(name)
                pending.extend(package.rglob("*.py"))
            else:
                needed.add(f"{name}.py")
                pending.append(PROJECT_ROOT / f"{name}.py")
    assert {"server", "pipelines"} <= needed
    copied: set[str] = set()
    for rest in instructions("COPY"):
        parts = [part for part in shlex.split(rest) if not part.startswith("--")]
        copied.update(part.removeprefix("./").rstrip("/") for part in parts[:-1])
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    assert not (copied & ignored), f".dockerignore drops what the Dockerfile copies: {copied & ignored}"
    assert {".venv", ".git", "tests", "bench", "tmp"} <= ignored


def onnxruntime_pin() -> str:
    text = REQUIREMENTS.read_text(encoding="utf-8")
    pins: list[str] = re.findall(r"^onnxruntime==([^\s#]+)", text, flags=re.MULTILINE)
    assert len(pins) == 1, "requirements.txt pins onnxruntime exactly once"
    return pins[0]


def test_onnxruntime_build_arg_defaults_to_the_pinned_cpu_package() -> None:
    args: dict[str, str] = {}
    for rest in instructions("ARG"):
        name, _, default = rest.partition("=")
        args[name] = default
    assert args.get("ONNXRUNTIME") == f"onnxruntime=={onnxruntime_pin()}"


def test_dockerfile_installs_the_runtime_requirements_with_the_chosen_onnxruntime() -> None:
    assert all("requirements-dev" not in rest for _, rest in dockerfile()), "tools and test dependencies stay out"
    assert any(rest.split()[0] == "requirements.txt" for rest in instructions("COPY"))
    installs = [rest for rest in instructions("RUN") if "pip install --no-cache-dir -r" in rest]
    assert len(installs) == 1
    install = installs[0]
    assert '"${ONNXRUNTIME}"' in install, "the build arg must be what gets installed"
    # The CPU pin is filtered out of requirements.txt first, so a GPU build does not get both wheels
    # (they share the `onnxruntime` module); the filter removes that line and nothing else.
    match = re.search(r"sed '/(.+?)/d' requirements\.txt > (\S+)", install)
    assert match, "requirements.txt must be installed through the onnxruntime filter"
    pattern, filtered_file = re.compile(match.group(1)), match.group(2)
    assert f"-r {filtered_file}" in install
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    dropped = [line for line in lines if pattern.search(line)]
    assert [line.split("#")[0].strip() for line in dropped] == [f"onnxruntime=={onnxruntime_pin()}"]
