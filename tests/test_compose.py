"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is read as YAML and held against the project: the modules its commands
name, the variables the settings classes read, the probes, the start order. hadolint and
``docker-compose config`` run when their binaries are there, else those tests skip.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from stack.servers import REDIS_PERSISTENCE
from tests.deployment import (
    DEV_ONLY_HOSTS,
    argv,
    dev_only,
    env_names,
    option,
    runnable_problem,
)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The settings class each anonchat container reads its environment through.
SETTINGS = {
    "user_migrate": "user_service.config",
    "user_service": "user_service.config",
    "message_migrate": "message_service.config",
    "message_service": "message_service.config",
    "worker": "worker.config",
    "gateway": "gateway.config",
}
# One-shot steps: they run to completion before the services that need them start.
MIGRATIONS = {"user_migrate", "message_migrate"}
PUBLIC_SERVICE = "gateway"
OBSERVABILITY = {"prometheus", "grafana"}
REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")


@functools.cache
def compose() -> dict[str, Any]:
    """The compose file as YAML (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    """Every service of the compose file, by name."""
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def in_profile(profile: str) -> set[str]:
    """The services only ``--profile <profile>`` starts."""
    return {name for name, svc in services().items() if profile in svc.get("profiles", [])}


def long_running() -> list[str]:
    """The services meant to stay up: everything but the migrations."""
    return sorted(set(services()) - MIGRATIONS)


def environment(service: str) -> dict[str, str]:
    """A service's environment as a mapping (compose allows a list of NAME=value too)."""
    env = services()[service].get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def depends_on(service: str) -> dict[str, Any]:
    """A service's dependencies; the short list form has no conditions, so it maps to None."""
    deps = services()[service].get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps)
    return dict(deps)


def settings_class(service: str) -> type[BaseSettings]:
    """The pydantic-settings class the service's process reads its environment through."""
    cls: type[BaseSettings] = importlib.import_module(SETTINGS[service]).Settings
    return cls


def dev_only_variables(service: str) -> dict[str, list[str]]:
    """For each dev-only field of the service's settings, the variables that set it."""
    cls = settings_class(service)
    return {
        name: env_names(cls, name, field)
        for name, field in cls.model_fields.items()
        if dev_only(name, field)
    }


def required_variables() -> set[str]:
    """The variables the compose file refuses to run without (``${NAME:?message}``)."""
    return set(REQUIRED_VARIABLE.findall(COMPOSE_FILE.read_text()))


def test_every_build_context_and_dockerfile_exists() -> None:
    builds = {name: svc["build"] for name, svc in services().items() if "build" in svc}
    assert builds, "no service builds the anonchat image"
    for name, build in builds.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert context.is_dir(), f"{name}: no build context {context}"
        assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_command_names_what_exists(service: str) -> None:
    command = services()[service].get("command")
    assert command, f"{service} has no command; the image's default would run"
    assert runnable_problem(argv(command)) is None


@pytest.mark.parametrize("service", sorted(set(SETTINGS) - MIGRATIONS))
def test_the_healthcheck_names_what_exists(service: str) -> None:
    test = services()[service]["healthcheck"]["test"]
    assert test[0] == "CMD", f"{service}: the image has no shell tools to probe with"
    assert runnable_problem(test[1:]) is None


@pytest.mark.parametrize("service", ["user_service", "message_service", "gateway"])
def test_an_http_healthcheck_asks_its_own_port_for_readiness(service: str) -> None:
    port = option(argv(services()[service]["command"]), "--port")
    code = services()[service]["healthcheck"]["test"][-1]
    assert f"http://127.0.0.1:{port}/readyz" in code


def test_the_image_holds_every_package_the_commands_import() -> None:
    copied = set(re.findall(r"^COPY\s+(\w+)/", DOCKERFILE.read_text(), flags=re.MULTILINE))
    needed = {SETTINGS[service].split(".")[0] for service in SETTINGS} | {"common"}
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_dev_only_setting_is_set(service: str) -> None:
    env = environment(service)
    missing = {
        field: names
        for field, names in dev_only_variables(service).items()
        if not any(name in env for name in names)
    }
    assert not missing, f"{service} would run with development defaults for {missing}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_no_setting_points_at_this_container(service: str) -> None:
    local = {
        name: value
        for name, value in environment(service).items()
        if any(host in value for host in DEV_ONLY_HOSTS)
    }
    assert not local, f"{service}: inside a container these reach itself: {local}"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_production_mode_and_required_secrets(service: str) -> None:
    env = environment(service)
    assert env.get("ANONCHAT_ENVIRONMENT") == "production"
    for name in ("ANONCHAT_INTERNAL_TOKEN", "ANONCHAT_JWT_SECRET"):
        assert REQUIRED_VARIABLE.fullmatch(env.get(name, "")), f"{service}: {name} has a default"


def test_the_databases_the_services_use_are_created() -> None:
    postgres = services()["postgres"]
    created = {environment("postgres").get("POSTGRES_DB", environment("postgres")["POSTGRES_USER"])}
    for mount in postgres.get("volumes", []):
        source, _, target = mount.partition(":")
        if target.startswith("/docker-entrypoint-initdb.d") and source.startswith("."):
            created |= set(re.findall(r"CREATE DATABASE (\w+)", (ROOT / source).read_text(), re.I))
    used = {
        value.rsplit("/", 1)[-1]
        for service in SETTINGS
        for name, value in environment(service).items()
        if name.endswith("DATABASE_URL")
    }
    assert used, "no service is given a database URL"
    assert used <= created, f"nothing creates {sorted(used - created)}"


def test_every_bind_mount_source_exists() -> None:
    for name, svc in services().items():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_data_lives_in_named_volumes() -> None:
    declared = set(compose().get("volumes") or {})
    assert {"postgres-data", "redis-data"} <= declared
    for name in ("postgres", "redis"):
        sources = {mount.split(":", 1)[0] for mount in services()[name].get("volumes", [])}
        assert sources & declared, f"{name} keeps its data in no named volume"


def test_only_the_gateway_publishes_a_port() -> None:
    publishing = {
        name for name, svc in services().items() if svc.get("ports") and not svc.get("profiles")
    }
    assert publishing == {PUBLIC_SERVICE}
    # The host port is ANONCHAT_GATEWAY_PORT (8000 unless set), the container's the one
    # the gateway's uvicorn listens on.
    port = option(argv(services()[PUBLIC_SERVICE]["command"]), "--port")
    published = [str(mapping) for mapping in services()[PUBLIC_SERVICE]["ports"]]
    assert published == [f"${{ANONCHAT_GATEWAY_PORT:-8000}}:{port}"]


@pytest.mark.parametrize("service", long_running())
def test_a_long_running_service_has_a_healthcheck(service: str) -> None:
    healthcheck = services()[service].get("healthcheck") or {}
    assert healthcheck.get("test"), f"{service} has no healthcheck"
    assert not healthcheck.get("disable"), f"{service} disables its healthcheck"


@pytest.mark.parametrize("service", long_running())
def test_a_long_running_service_restarts(service: str) -> None:
    assert services()[service].get("restart") == "unless-stopped"


@pytest.mark.parametrize("service", sorted(MIGRATIONS))
def test_a_migration_runs_once(service: str) -> None:
    assert services()[service].get("restart", "no") == "no", "a migration must not loop"


@pytest.mark.parametrize("service", sorted(services()))
def test_every_dependency_has_a_condition(service: str) -> None:
    for dependency, spec in depends_on(service).items():
        condition = (spec or {}).get("condition")
        assert condition, f"{service} -> {dependency}: only waits for the start, not readiness"
        if dependency in MIGRATIONS:
            assert condition == "service_completed_successfully", f"{service} -> {dependency}"
        else:
            assert condition == "service_healthy", f"{service} -> {dependency}"
            assert services()[dependency].get("healthcheck"), f"{dependency} cannot be healthy"


@pytest.mark.parametrize("service", ["user_service", "message_service", "worker"])
def test_a_service_with_a_database_waits_for_its_migration(service: str) -> None:
    migration = "user_migrate" if service == "user_service" else "message_migrate"
    assert migration in depends_on(service)


def test_redis_fsyncs_its_append_only_file_before_answering() -> None:
    args = argv(services()["redis"]["command"])
    assert option(args, "--appendonly") == "yes"
    assert option(args, "--appendfsync") == "always"


def test_the_local_throwaway_redis_persists_as_the_compose_one() -> None:
    args = argv(services()["redis"]["command"])
    for name in ("--appendonly", "--appendfsync"):
        assert option(REDIS_PERSISTENCE, name) == option(args, name)


def test_the_worker_can_be_scaled() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker, "two replicas cannot share a container name"
    assert "ports" not in worker, "two replicas cannot publish one host port"


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for pattern in (".venv/", ".git/", ".env", ".pytest_cache/", "bench/results/"):
        assert pattern in ignored, f".dockerignore lets {pattern} into the build context"


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        pytest.skip(f"no {hadolint}: install the dev dependencies (uv sync)")
    result = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_the_file() -> None:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.skip("no docker-compose binary on PATH (Debian: apt-get install docker-compose)")
    env = {**os.environ, **dict.fromkeys(required_variables(), "x" * 40)}
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_env_example_lists_every_variable_a_service_reads() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    read = {
        variable
        for module in set(SETTINGS.values())
        for cls in [importlib.import_module(module).Settings]
        for name, field in cls.model_fields.items()
        for variable in env_names(cls, name, field)
    }
    assert read - listed == set()


def test_prometheus_and_grafana_come_only_with_the_observability_profile() -> None:
    assert in_profile("observability") == OBSERVABILITY
    profiled = {name for name, svc in services().items() if svc.get("profiles")}
    assert profiled == OBSERVABILITY, "a plain `up` must start what it always started"


@pytest.mark.parametrize("service", sorted(OBSERVABILITY))
def test_an_observability_service_runs_a_pinned_image_and_publishes_on_loopback(
    service: str,
) -> None:
    image = services()[service]["image"]
    name, _, tag = image.partition(":")
    assert name in {"prom/prometheus", "grafana/grafana"}, image
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{service}: {image} is not pinned"
    for mapping in services()[service]["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), (
            f"{service} publishes {mapping} beyond this host"
        )


def test_prometheus_scrapes_every_process_at_any_scale() -> None:
    config = yaml.safe_load((ROOT / "deploy/observability/prometheus/prometheus.yml").read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            scraped.update(dict.fromkeys(sd["names"], sd["port"]))
    # Every process's container (each worker replica's too, found by the service's name).
    assert scraped == dict.fromkeys(set(SETTINGS) - MIGRATIONS, 9100)
    env = {name: environment(name) for name in scraped}
    for name, variables in env.items():
        assert variables.get("ANONCHAT_METRICS_PORT", "9100") == "9100", name
