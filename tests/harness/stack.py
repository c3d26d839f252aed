"""The real processes of the stack on free ports, as the run command starts them, on
databases of their own."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from stack.processes import (
    StackConfig,
    free_port,
    process_names,
    spawn,
    stack_processes,
    stop,
    uvicorn,
    wait_healthy,
)
from tests.harness.servers import Servers, throwaway_databases
from tests.harness.settings import (
    FAST_HASHING_ENV,
    INTERNAL_TOKEN,
    JWT_SECRET,
    NO_RATE_LIMITS,
    QUICK_ERASURE_ENV,
    QUICK_RECOVERY_ENV,
    QUICK_STREAMS_ENV,
)


@dataclass
class RunningStack:
    gateway_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    config: StackConfig


def stack_config_for_tests(users_url: str, messages_url: str, redis_url: str) -> StackConfig:
    """A stack for tests: two workers, free ports (metrics ports too), quick recovery, no
    rate limits."""
    workers = 2
    return StackConfig(
        users_database_url=users_url,
        messages_database_url=messages_url,
        redis_url=redis_url,
        gateway_port=free_port(),
        user_service_port=free_port(),
        message_service_port=free_port(),
        workers=workers,
        metrics_ports={name: free_port() for name in process_names(workers)},
        environment={
            "ANONCHAT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "ANONCHAT_JWT_SECRET": JWT_SECRET,
            "ANONCHAT_LOG_LEVEL": "WARNING",
            **FAST_HASHING_ENV,
            **QUICK_RECOVERY_ENV,
            **QUICK_STREAMS_ENV,
            **QUICK_ERASURE_ENV,
            **NO_RATE_LIMITS,
        },
    )


@pytest.fixture(scope="session")
def running_stack(servers: Servers, redis_url: str) -> Iterator[RunningStack]:
    """The real processes (uvicorn, RQ workers), on free ports, as the run command starts
    them, on databases of their own."""
    for urls in throwaway_databases(servers, "e2e"):
        config = stack_config_for_tests(urls["user_service"], urls["message_service"], redis_url)
        running: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for process in stack_processes(config):
                running[process.name] = spawn(process)
                if process.health_url is not None:
                    wait_healthy(process.health_url, timeout=30, process=running[process.name])
            yield RunningStack(f"http://127.0.0.1:{config.gateway_port}", running, config)
        finally:
            for popen in reversed(running.values()):
                stop(popen)


@pytest.fixture
def gateway(running_stack: RunningStack) -> Iterator[httpx.Client]:
    """An HTTP client of the real gateway."""
    with httpx.Client(base_url=running_stack.gateway_url, timeout=10) as client:
        yield client


@dataclass
class Replicas:
    """Gateway replicas and the message_service replica behind them."""

    urls: list[str]
    gateways: list[subprocess.Popen[bytes]]
    message_service: subprocess.Popen[bytes]
    message_service_url: str


@contextlib.contextmanager
def gateways(
    running_stack: RunningStack, redis_url: str, settings: dict[str, str], count: int
) -> Iterator[list[str]]:
    """The URLs of :func:`replicas`."""
    with replicas(running_stack, redis_url, settings, count) as started:
        yield started.urls


@contextlib.contextmanager
def replicas(
    running_stack: RunningStack, redis_url: str, settings: dict[str, str], count: int
) -> Iterator[Replicas]:
    """More gateway replicas, keeping their rate limits in a Redis database of their own,
    in front of the running user_service and a message_service replica of their own (on
    the stack's database and queue) that limits sends as ``settings`` say."""
    config = running_stack.config
    shared = {
        "ANONCHAT_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "ANONCHAT_JWT_SECRET": JWT_SECRET,
        "ANONCHAT_LOG_LEVEL": "WARNING",
        **settings,
    }
    users_url = f"http://127.0.0.1:{config.user_service_port}"
    messages_port = free_port()
    messages = uvicorn(
        "message_service",
        "message_service.app",
        messages_port,
        {
            **shared,
            "MESSAGE_SERVICE_DATABASE_URL": config.messages_database_url,
            "MESSAGE_SERVICE_REDIS_URL": config.redis_url,
            "MESSAGE_SERVICE_USER_SERVICE_URL": users_url,
        },
    )
    env = {
        **shared,
        "GATEWAY_USER_SERVICE_URL": users_url,
        "GATEWAY_MESSAGE_SERVICE_URL": f"http://127.0.0.1:{messages_port}",
        "GATEWAY_REDIS_URL": redis_url,
    }
    ports = [free_port() for _ in range(count)]
    running = []
    try:
        for process in [
            messages,
            *(uvicorn("gateway", "gateway.app", port, env) for port in ports),
        ]:
            running.append(spawn(process))
            assert process.health_url is not None
            wait_healthy(process.health_url, timeout=30, process=running[-1])
        yield Replicas(
            urls=[f"http://127.0.0.1:{port}" for port in ports],
            gateways=running[1:],
            message_service=running[0],
            message_service_url=f"http://127.0.0.1:{messages_port}",
        )
    finally:
        for popen in reversed(running):
            stop(popen)


@contextlib.contextmanager
def lone_gateway(redis_url: str, settings: dict[str, str] | None = None) -> Iterator[str]:
    """A gateway process with no services behind it (what it answers itself: probes,
    ``/docs``, the sample message), configured with ``settings``; yields its URL."""
    port = free_port()
    env = {
        "ANONCHAT_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "ANONCHAT_JWT_SECRET": JWT_SECRET,
        "ANONCHAT_LOG_LEVEL": "WARNING",
        "GATEWAY_REDIS_URL": redis_url,
        **(settings or {}),
    }
    process = uvicorn("gateway", "gateway.app", port, env)
    running = spawn(process)
    try:
        assert process.health_url is not None
        wait_healthy(process.health_url, timeout=30, process=running)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(running)
