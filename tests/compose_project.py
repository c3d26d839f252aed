"""docker-compose.yml run as an operator runs it: the compose command (v2, else v1), a
project of its own, and what the Docker engine says about the project's containers.

Nothing here pulls an image: the base images the Dockerfile and the compose file name
must already be in the engine (on a machine that reaches no registry, the stand-ins that
.ci/run builds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# From 23.0 the docker CLI builds with BuildKit only through the buildx plugin.
FIRST_CLI_WITHOUT_BUILTIN_BUILDKIT = 23


def run(argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run a command to its end within ``timeout`` seconds; its output, or an error
    carrying the end of what it wrote."""
    try:
        result = subprocess.run(
            argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"{' '.join(argv)}: still running after {timeout} s") from expired
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{tail}")
    return result.stdout


def succeeds(argv: list[str]) -> bool:
    """Whether a quick command exits 0."""
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def docker(*args: str, timeout: float = 60) -> str:
    """The docker CLI first on PATH (any version talks to the engine)."""
    return run(["docker", *args], timeout=timeout)


def logs(container_id: str, lines: int = 20) -> str:
    """The last lines a container wrote, stdout and stderr as they came."""
    return subprocess.run(
        ["docker", "logs", "--tail", str(lines), container_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    ).stdout


def base_images() -> list[str]:
    """The images the build starts from and the services a plain ``up`` runs as they are
    (a profile's, never started by the tests, are left out)."""
    dockerfile = DOCKERFILE.read_text()
    images = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    images += re.findall(r"^COPY\s+--from=(\S+)", dockerfile, flags=re.MULTILINE)
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    images += [
        svc["image"] for svc in services.values() if "build" not in svc and not svc.get("profiles")
    ]
    return sorted(set(images))


def one_shot_services() -> set[str]:
    """The services that run to completion (the migrations), not to stay up."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return {name for name, svc in services.items() if svc.get("restart", "no") == "no"}


def docker_clis() -> list[Path]:
    """Every distinct docker CLI on PATH, first one first."""
    found: dict[Path, Path] = {}
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found.setdefault(candidate.resolve(), candidate)
    return list(found.values())


def builds_with_buildkit(cli: Path) -> bool:
    """Whether a docker CLI builds with BuildKit (the Dockerfile's cache mount needs it)."""
    if succeeds([str(cli), "buildx", "version"]):
        return True
    version = subprocess.run(
        [str(cli), "version", "--format", "{{.Client.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    major = re.match(r"\d+", version.strip())
    return major is not None and int(major.group()) < FIRST_CLI_WITHOUT_BUILTIN_BUILDKIT


@dataclass(frozen=True)
class ComposeCommand:
    """How to run compose here: its argv and what its environment needs."""

    argv: list[str]
    env: dict[str, str]


def compose_command(scratch: Path) -> ComposeCommand | str:
    """``docker compose`` (v2) where it exists, else ``docker-compose`` (v1) as the README
    says to run it; or why neither can build the image here.

    v1 builds by running ``docker build`` from PATH, so it gets a PATH whose first docker
    builds with BuildKit (through ``scratch``, a folder for one link).
    """
    if succeeds(["docker", "compose", "version"]):
        return ComposeCommand(["docker", "compose"], {})
    v1 = shutil.which("docker-compose")
    if v1 is None:
        return "neither `docker compose` (v2) nor `docker-compose` (v1) is installed"
    cli = next((cli for cli in docker_clis() if builds_with_buildkit(cli)), None)
    if cli is None:
        return (
            "docker-compose (v1) builds through the docker CLI, and no docker on PATH builds "
            "with BuildKit (a client older than 23.0, or the buildx plugin)"
        )
    scratch.mkdir(parents=True, exist_ok=True)
    link = scratch / "docker"
    link.unlink(missing_ok=True)
    link.symlink_to(cli)
    return ComposeCommand(
        [v1],
        {
            "DOCKER_BUILDKIT": "1",
            "COMPOSE_DOCKER_CLI_BUILD": "1",
            "PATH": f"{scratch}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )


def compose_or_reason(scratch: Path) -> ComposeCommand | str:
    """The compose command to run the stack with, or why it cannot be built and run here."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH (Debian: apt-get install docker.io; .ci/run does)"
    if not succeeds(["docker", "info"]):
        return "no Docker engine answers `docker info` (start dockerd; .ci/run does)"
    missing = [
        image for image in base_images() if not succeeds(["docker", "image", "inspect", image])
    ]
    if missing:
        return (
            f"base images {missing} are not in the engine and this test never pulls one: "
            "pull them, or build local stand-ins with the shared offline-images/build "
            "(.ci/run does)"
        )
    return compose_command(scratch)


@dataclass(frozen=True)
class Container:
    """One container of the project, as the engine reports it."""

    id: str
    service: str
    hostname: str
    status: str  # "running", "exited", ...
    health: str  # "healthy", "starting", "unhealthy", or "" without a healthcheck
    exit_code: int
    health_log: str

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> Container:
        """From one entry of ``docker inspect``."""
        state = data["State"]
        health = state.get("Health") or {}
        probes = health.get("Log") or []
        return cls(
            id=data["Id"][:12],
            service=data["Config"]["Labels"][SERVICE_LABEL],
            hostname=data["Config"]["Hostname"],
            status=state["Status"],
            health=health.get("Status", ""),
            exit_code=int(state["ExitCode"]),
            health_log=str(probes[-1].get("Output", "")).strip() if probes else "",
        )

    def ready(self, one_shot: set[str]) -> bool:
        """Up and healthy, or for a one-shot step, done without error."""
        if self.service in one_shot:
            return self.status == "exited" and self.exit_code == 0
        return self.status == "running" and self.health == "healthy"


@dataclass
class Project:
    """The compose file run under a project name of its own, with its own settings."""

    name: str
    command: ComposeCommand
    settings: dict[str, str]
    env_file: Path

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run a compose subcommand for this project (never reading the checkout's .env)."""
        argv = [*self.command.argv, "--env-file", str(self.env_file), "-p", self.name]
        env = {**os.environ, **self.command.env, **self.settings}
        return run([*argv, "-f", str(COMPOSE_FILE), *args], timeout=timeout, env=env)

    def up(self, *, workers: int = 1) -> None:
        """``up -d`` with that many workers, then wait until every service is healthy."""
        self.compose("up", "-d", "--scale", f"worker={workers}")
        self.wait_healthy()

    def containers(self, service: str | None = None) -> list[Container]:
        """The project's containers, stopped ones included (of one service, if named)."""
        labels = [f"label={PROJECT_LABEL}={self.name}"]
        if service is not None:
            labels.append(f"label={SERVICE_LABEL}={service}")
        filters = [arg for label in labels for arg in ("--filter", label)]
        ids = docker("ps", "-aq", *filters).split()
        if not ids:
            return []
        return [Container.from_inspect(data) for data in json.loads(docker("inspect", *ids))]

    def wait_healthy(self, timeout: float = 180) -> list[Container]:
        """Wait until every service is healthy and every one-shot step has succeeded."""
        one_shot = one_shot_services()
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            waiting = [c for c in containers if not c.ready(one_shot)]
            if containers and not waiting:
                return containers
            if time.monotonic() > deadline:
                states = "\n".join(
                    f"  {c.service} {c.id}: {c.status} {c.health} (exit {c.exit_code}) "
                    f"{c.health_log}\n{logs(c.id)}"
                    for c in waiting
                )
                raise AssertionError(f"not healthy after {timeout} s:\n{states}")
            time.sleep(0.5)

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, volumes and networks that still exist."""
        label = f"label={PROJECT_LABEL}={self.name}"
        return {
            kind: docker(*listing, "--filter", label).split()
            for kind, listing in {
                "containers": ("ps", "-aq"),
                "volumes": ("volume", "ls", "-q"),
                "networks": ("network", "ls", "-q"),
            }.items()
        }
