"""The processes of the stack and how to start, probe and stop them."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A process started here serves metrics only where its environment names a port: two
# on one host cannot share the default one.
NO_METRICS = {"ANONCHAT_METRICS_PORT": "0"}


@dataclass(frozen=True)
class Process:
    """One process of the stack: its name, command line, environment and probe."""

    name: str
    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    health_url: str | None = None


# Ports for servers are picked below Linux's ephemeral range (32768-60999), from which the
# kernel gives outgoing connections their local port: a port picked there can be taken by
# some client's connection before the server binds it.
SERVER_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    while True:
        port = random.choice(SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


# The gateway is where the public connects: past this many connections and requests at
# once it answers 503 at once rather than run out of file descriptors, and this many
# connections may wait to be accepted.
GATEWAY_CONNECTION_LIMITS = ["--limit-concurrency", "10000", "--backlog", "2048"]


def uvicorn(name: str, app: str, port: int, env: Mapping[str, str]) -> Process:
    """A service served by uvicorn on 127.0.0.1:``port`` (access log off: it cost 40%)."""
    limits = GATEWAY_CONNECTION_LIMITS if name == "gateway" else []
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        f"{app}:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-server-header",
        # Request and write-stall deadlines uvicorn lacks (slow clients, stalled streams).
        "--http",
        "common.serving:GuardedHttpProtocol",
        # Longer than the callers' pooled connections live (30 s), so that a caller never
        # reuses a connection the server is closing.
        "--timeout-keep-alive",
        "75",
        "--log-level",
        "warning",
        *limits,
    ]
    return Process(name, argv, {**NO_METRICS, **env}, f"http://127.0.0.1:{port}/healthz")


@dataclass(frozen=True)
class StackConfig:
    """Where the stack's data lives and which ports it answers on."""

    users_database_url: str
    messages_database_url: str
    redis_url: str
    gateway_port: int
    user_service_port: int
    message_service_port: int
    workers: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    # Each process's metrics port, by process name (see process_names); those not named
    # serve no metrics.
    metrics_ports: Mapping[str, int] = field(default_factory=dict)


def process_names(workers: int) -> list[str]:
    """The names of the stack's processes, in the order they start."""
    return [
        "user_service",
        "message_service",
        *(f"worker.{n}" for n in range(1, workers + 1)),
        "gateway",
    ]


def numbered_metrics_ports(first: int, workers: int) -> dict[str, int]:
    """Metrics ports for the stack on one host: ``first`` for the first process, the next
    for the next, and so on (0: none serves metrics)."""
    if first == 0:
        return {}
    return {name: first + n for n, name in enumerate(process_names(workers))}


def _metrics(config: StackConfig, name: str) -> dict[str, str]:
    """The environment that gives process ``name`` its metrics port, or none."""
    return {"ANONCHAT_METRICS_PORT": str(config.metrics_ports.get(name, 0))}


def worker(name: str, config: StackConfig) -> Process:
    """One RQ worker process on the messages queue."""
    env = {
        **config.environment,
        **_metrics(config, name),
        "WORKER_DATABASE_URL": config.messages_database_url,
        "WORKER_REDIS_URL": config.redis_url,
    }
    return Process(name, [sys.executable, "-m", "worker"], env)


def stack_processes(config: StackConfig) -> list[Process]:
    """The processes of the stack, in the order they should start."""
    users_url = f"http://127.0.0.1:{config.user_service_port}"
    messages_url = f"http://127.0.0.1:{config.message_service_port}"
    shared = dict(config.environment)
    return [
        uvicorn(
            "user_service",
            "user_service.app",
            config.user_service_port,
            {
                **shared,
                **_metrics(config, "user_service"),
                "USER_SERVICE_DATABASE_URL": config.users_database_url,
                "USER_SERVICE_REDIS_URL": config.redis_url,
                "USER_SERVICE_MESSAGE_SERVICE_URL": messages_url,
            },
        ),
        uvicorn(
            "message_service",
            "message_service.app",
            config.message_service_port,
            {
                **shared,
                **_metrics(config, "message_service"),
                "MESSAGE_SERVICE_DATABASE_URL": config.messages_database_url,
                "MESSAGE_SERVICE_REDIS_URL": config.redis_url,
                "MESSAGE_SERVICE_USER_SERVICE_URL": users_url,
            },
        ),
        *(worker(f"worker.{n}", config) for n in range(1, config.workers + 1)),
        uvicorn(
            "gateway",
            "gateway.app",
            config.gateway_port,
            {
                **shared,
                **_metrics(config, "gateway"),
                "GATEWAY_USER_SERVICE_URL": users_url,
                "GATEWAY_MESSAGE_SERVICE_URL": messages_url,
                "GATEWAY_REDIS_URL": config.redis_url,
            },
        ),
    ]


def wait_healthy(
    url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url`` until it answers 200, the process exits, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before it was up"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def spawn(process: Process) -> subprocess.Popen[bytes]:
    """Start ``process`` in its own process group, from the repository root."""
    env = {**os.environ, **process.env}
    return subprocess.Popen(process.argv, env=env, cwd=ROOT, start_new_session=True)


def stop(running: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after ``timeout``."""
    if running.poll() is not None:
        return
    os.killpg(running.pid, signal.SIGTERM)
    try:
        running.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()


@contextlib.contextmanager
def paused(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """``processes`` (and their children) stopped (SIGSTOP) for the block, resumed
    (SIGCONT) after it."""
    for process in processes:
        os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGCONT)
