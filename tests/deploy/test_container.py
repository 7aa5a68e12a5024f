"""Dockerfile, entrypoint and docker-compose.yml, checked without a Docker engine: the files
parse and agree with each other and with the receiver's settings, every mounted file
exists, and the image's entrypoint, command and HEALTHCHECK work when run directly."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from receiver.settings import Settings
from tests.deploy.harness import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    REPO_ROOT,
    load_yaml,
)
from tests.e2e.harness import ManagedProcess, bearer, clean_env, free_port, http
from tests.helpers import alert, webhook

pytestmark = pytest.mark.timeout(60)

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"
MAKE_SECRETS = REPO_ROOT / "docker" / "make-secrets.sh"
GRAFANA_DASHBOARDS = REPO_ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
GRAFANA_DATASOURCES = REPO_ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
# Service -> the port it listens on inside its container.
PORTS = {"receiver": 9095, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
SERVICES = {"postgres", *PORTS}
# Variables the entrypoint turns into settings, besides RECEIVER_*_FILE.
ENTRYPOINT_FILE_VARS = {"PGPASSWORD_FILE"}


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml (read once; not to be modified)."""
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


# --- Dockerfile --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    name: str
    args: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    instructions, stage = [], -1
    for line in lines:
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, name.upper(), args.strip()))
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(args: str) -> list[str]:
    parsed: list[str] = json.loads(args)
    return parsed


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in final_stage():
        if instruction.name == "ENV":
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def healthcheck_argv() -> list[str]:
    [check] = [i for i in final_stage() if i.name == "HEALTHCHECK"]
    return exec_form(check.args.split(" CMD ", 1)[1])


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether a context path is left out by .dockerignore (no ! exceptions are used)."""
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatchcase("/".join(parts[i:]), tail) for i in range(len(parts))):
                return True
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), pattern) for i in range(len(parts))):
            return True
    return False


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_small_non_root_with_healthcheck() -> None:
    instructions = dockerfile()
    bases = [i.args.split()[0] for i in instructions if i.name == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    final = final_stage()
    names = [i.name for i in final]
    [user] = [i.args for i in final if i.name == "USER"]
    assert user.split(":")[0] not in {"root", "0"}, user
    assert names.index("USER") < names.index("CMD")
    assert [i.args for i in final if i.name == "EXPOSE"] == ["9095"]
    check = " ".join(healthcheck_argv())
    assert "/healthz" in check and "urllib.request" in check, check
    assert exec_form(next(i.args for i in final if i.name == "CMD")) == ["receiver", "serve"]
    for run in (i.args for i in instructions if i.name == "RUN" and "pip install" in i.args):
        assert "--no-cache-dir" in run, run
    env = image_env()
    assert env["RECEIVER_HOST"] == "0.0.0.0"
    assert env["RECEIVER_PORT"] == "9095"
    for key in env:
        if key.startswith("RECEIVER_"):
            assert key.removeprefix("RECEIVER_").lower() in Settings.model_fields, key


def test_docker_context_holds_what_the_build_copies() -> None:
    """Every COPY source exists and .dockerignore keeps it (and the package) in the context;
    the build stage copies the readme pyproject.toml names."""
    patterns = dockerignore_patterns()
    copied: list[str] = []
    for instruction in dockerfile():
        if instruction.name != "COPY" or "--from=" in instruction.args:
            continue
        *sources, _ = instruction.args.split()
        copied += sources
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for module in (REPO_ROOT / "receiver").rglob("*.py"):
        relative = module.relative_to(REPO_ROOT).as_posix()
        assert not dockerignored(relative, patterns), relative
    readme = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in copied
    for left_out in ("tests", ".git", "secrets", "receiver/__pycache__/x.pyc", "r.db"):
        assert dockerignored(left_out, patterns), left_out


def test_entrypoint_exports_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-value\n")

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT), "env"],
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    result = run(RECEIVER_WEBHOOK_TOKEN_FILE=str(secret), PGPASSWORD_FILE=str(secret))
    assert result.returncode == 0, result.stderr
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert exported["RECEIVER_WEBHOOK_TOKEN"] == "s3cret-value"
    assert exported["PGPASSWORD"] == "s3cret-value"
    assert "RECEIVER_WEBHOOK_TOKEN_FILE" not in exported
    missing = run(RECEIVER_API_TOKEN_FILE=str(tmp_path / "nope"))
    assert missing.returncode == 2 and "RECEIVER_API_TOKEN_FILE" in missing.stderr
    both = run(RECEIVER_API_TOKEN_FILE=str(secret), RECEIVER_API_TOKEN="x")
    assert both.returncode == 2 and "both" in both.stderr
    for blank in ("", "\n", "  \t\n"):  # an empty secret file never becomes an empty token
        secret.write_text(blank)
        empty = run(RECEIVER_WEBHOOK_TOKEN_FILE=str(secret))
        assert empty.returncode == 2 and "is empty" in empty.stderr, repr(blank)
        assert "RECEIVER_WEBHOOK_TOKEN=" not in empty.stdout


def make_secrets(directory: Path) -> None:
    result = subprocess.run(
        ["sh", str(MAKE_SECRETS), str(directory)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_make_secrets_writes_every_compose_secret(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    make_secrets(secrets_dir)
    declared = compose()["secrets"]
    assert {p.name for p in secrets_dir.iterdir()} == set(declared)
    for name, spec in declared.items():
        assert spec["file"] == f"./secrets/{name}", "secrets live in the git-ignored ./secrets"
        written = secrets_dir / name
        assert len(written.read_text()) >= 32, name
        assert stat.S_IMODE(written.stat().st_mode) == 0o644, name
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    before = {p.name: p.read_text() for p in secrets_dir.iterdir()}
    make_secrets(secrets_dir)
    assert {p.name: p.read_text() for p in secrets_dir.iterdir()} == before, "kept on re-run"
    assert "secrets/" in (REPO_ROOT / ".gitignore").read_text().splitlines()


# --- docker-compose.yml ------------------------------------------------------------------


def bind_mounts() -> Iterator[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount."""
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                yield name, source, target


def host_path(service_name: str, container_path: str) -> Path | None:
    """Where a container path of a service comes from in the repository, if bind-mounted."""
    for name, source, target in bind_mounts():
        if name == service_name and (
            container_path == target or container_path.startswith(target.rstrip("/") + "/")
        ):
            return REPO_ROOT / source / os.path.relpath(container_path, target)
    return None


def test_compose_services_images_and_ports() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, spec in services.items():
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin the image ({image})"
        ports = spec.get("ports", [])
        if name not in PORTS:
            assert not ports, f"{name} needs no published port"
            continue
        assert ports == [f"127.0.0.1:{PORTS[name]}:{PORTS[name]}"], f"{name}: {ports}"
    assert services["receiver"]["build"] == "."
    assert (REPO_ROOT / "Dockerfile").is_file()


def _version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    first = (result.stdout or result.stderr).split()
    return first[first.index("version") + 1].split("+")[0]


def test_compose_runs_the_tool_versions_the_tests_validate() -> None:
    """The images are the versions of the local binaries that check the configuration."""
    from tests.deploy.harness import alertmanager, prometheus_binary

    prometheus = service("prometheus")["image"].rpartition(":v")[2]
    assert prometheus == _version([prometheus_binary(), "--version"])
    manager = service("alertmanager")["image"].rpartition(":v")[2]
    assert manager == _version([alertmanager(), "--version"])


def test_compose_mounts_exist_and_line_up() -> None:
    for name, source, _ in bind_mounts():
        assert (REPO_ROOT / source).exists(), f"{name}: {source} does not exist"
    named = set(compose().get("volumes", {}))
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
    # The files the programs are told to read arrive through those mounts.
    for name in ("prometheus", "alertmanager"):
        for flag in service(name)["command"]:
            if flag.startswith("--config.file="):
                found = host_path(name, flag.split("=", 1)[1])
                assert found is not None and found.is_file(), f"{name}: {flag}"
    assert host_path("prometheus", "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    assert host_path("alertmanager", "/etc/alertmanager/alertmanager.yml") == ALERTMANAGER_CONFIG
    [provider] = load_yaml(GRAFANA_DASHBOARDS)["providers"]
    dashboards = host_path("grafana", provider["options"]["path"])
    assert dashboards is not None and list(dashboards.glob("*.json")), dashboards
    provisioning = host_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert provisioning == GRAFANA_DATASOURCES
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    found_home = host_path("grafana", home)
    assert found_home is not None and found_home.is_file(), home
    rules = service("receiver")["environment"]["RECEIVER_RULES"]
    assert host_path("receiver", rules) == REPO_ROOT / "routing_rules.yaml"


def test_receiver_environment_names_are_settings() -> None:
    """Settings ignore unknown RECEIVER_* variables, so a typo would pass silently."""
    for key in service("receiver")["environment"]:
        if key in ENTRYPOINT_FILE_VARS:
            continue
        assert key.startswith("RECEIVER_"), key
        field = key.removeprefix("RECEIVER_").removesuffix("_FILE").lower()
        assert field in Settings.model_fields, f"{key}: no setting {field}"


def test_secrets_reach_the_services_that_read_them() -> None:
    declared = set(compose()["secrets"])
    for name, spec in compose()["services"].items():
        mounted = set(spec.get("secrets", []))
        assert mounted <= declared, name
        for key, value in spec.get("environment", {}).items():
            if key.endswith("_FILE"):
                assert value in {f"/run/secrets/{s}" for s in mounted}, f"{name}: {key}"
    # Alertmanager sends the token the receiver checks: the same secret.
    [hook] = load_yaml(ALERTMANAGER_CONFIG)["receivers"][0]["webhook_configs"]
    credentials = hook["http_config"]["authorization"]["credentials_file"]
    receiver_env = service("receiver")["environment"]
    assert credentials == receiver_env["RECEIVER_WEBHOOK_TOKEN_FILE"]
    assert credentials.removeprefix("/run/secrets/") in service("alertmanager")["secrets"]
    assert receiver_env["RECEIVER_DATABASE_URL"].startswith("postgresql://receiver@postgres:")


def test_startup_order_waits_for_health() -> None:
    for name, spec in compose()["services"].items():
        for dependency, condition in spec.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"
            checked = "healthcheck" in service(dependency) or (
                service(dependency).get("build") == "." and healthcheck_argv()
            )
            assert checked, f"{name} waits for {dependency}, which has no healthcheck"
    assert service("receiver")["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_addresses_between_services_match_compose() -> None:
    prometheus = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["receiver"]["static_configs"][0]["targets"] == [f"receiver:{PORTS['receiver']}"]
    [managers] = prometheus["alerting"]["alertmanagers"]
    assert managers["static_configs"][0]["targets"] == [f"alertmanager:{PORTS['alertmanager']}"]
    [hook] = load_yaml(ALERTMANAGER_CONFIG)["receivers"][0]["webhook_configs"]
    assert hook["url"] == f"http://receiver:{PORTS['receiver']}/webhook"
    [datasource] = load_yaml(GRAFANA_DATASOURCES)["datasources"]
    assert datasource["url"] == f"http://prometheus:{PORTS['prometheus']}"


# --- the image's entrypoint, command and healthcheck, run directly ------------------------


def _receiver_command() -> list[str]:
    """The image's CMD with this interpreter's console script."""
    script = Path(sys.executable).with_name("receiver")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "receiver"]
    cmd = exec_form(next(i.args for i in final_stage() if i.name == "CMD"))
    return [*head, *cmd[1:]]


def _healthcheck(port: int) -> int:
    argv = healthcheck_argv()
    assert argv[0] == "python"
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env=clean_env(RECEIVER_PORT=str(port)),
        capture_output=True,
        timeout=15,
        check=False,
    )
    return result.returncode


def test_entrypoint_command_and_healthcheck_run_the_receiver(tmp_path: Path) -> None:
    """The image's ENV and the Compose receiver environment, with the Compose secrets as
    files, through the entrypoint: the tokens from the files guard the API and webhook, and
    the HEALTHCHECK passes while it runs and fails once it stopped. (Loopback and SQLite
    instead of 0.0.0.0 and PostgreSQL.)"""
    secrets_dir = tmp_path / "secrets"
    make_secrets(secrets_dir)
    port = free_port()
    env = clean_env(**image_env())
    for key, value in service("receiver")["environment"].items():
        if key.endswith("_FILE"):
            value = str(secrets_dir / value.removeprefix("/run/secrets/"))
        env[key] = str(value)
    env.update(
        RECEIVER_HOST="127.0.0.1",
        RECEIVER_PORT=str(port),
        RECEIVER_DATABASE_URL=f"sqlite:///{tmp_path}/receiver.db",
        RECEIVER_RULES=str(REPO_ROOT / "routing_rules.yaml"),
        PATH=os.environ.get("PATH", ""),
    )
    argv = ["sh", str(ENTRYPOINT), *_receiver_command()]
    proc = ManagedProcess("image", argv, env, cwd=tmp_path, log_dir=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(url + "/readyz")
        assert _healthcheck(port) == 0, proc.logs()
        webhook_token = (secrets_dir / "receiver_webhook_token").read_text()
        api_token = (secrets_dir / "receiver_api_token").read_text()
        body = webhook(alert())
        assert http("POST", url + "/webhook", body, bearer("wrong")).status == 401
        accepted = http("POST", url + "/webhook", body, bearer(webhook_token))
        assert accepted.status == 200, accepted.body
        listed = http("GET", url + "/api/v1/incidents", headers=bearer(api_token))
        assert listed.status == 200 and len(listed.json()["incidents"]) == 1
        output = proc.output()
        assert webhook_token not in output and api_token not in output
    finally:
        proc.stop()
    deadline = time.monotonic() + 10
    while _healthcheck(port) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _healthcheck(port) != 0, "the healthcheck passes with the receiver stopped"
