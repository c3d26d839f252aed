"""The test harness: throwaway databases and a Redis db of our own, the apps in process,
and the real processes on free ports.

Postgres and Redis come from ANONCHAT_TEST_POSTGRES_URL / ANONCHAT_TEST_REDIS_URL, else
from testcontainers when a Docker engine answers, else from the local servers. Every run
creates its own databases and Redis db and removes them afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from common import db
from stack import infra
from stack.processes import (
    ROOT,
    StackConfig,
    free_port,
    spawn,
    stack_processes,
    stop,
    wait_healthy,
)
from user_service.app import create_app as create_user_service
from user_service.config import Settings as UserSettings

RUN_ID = uuid.uuid4().hex[:10]
INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
JWT_SECRET = "test-jwt-secret-" + uuid.uuid4().hex
# Cheap argon2id parameters, so that registering hundreds of users stays quick.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024, "argon2_parallelism": 1}
FAST_HASHING_ENV = {
    f"USER_SERVICE_{key.upper()}": str(value) for key, value in FAST_HASHING.items()
}


@dataclass(frozen=True)
class Servers:
    postgres_url: str
    redis_url: str


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The Postgres and Redis servers this run uses (never their existing data)."""
    postgres_url = os.environ.get("ANONCHAT_TEST_POSTGRES_URL")
    redis_url = os.environ.get("ANONCHAT_TEST_REDIS_URL")
    with ExitStack() as stack:
        if not (postgres_url and redis_url) and infra.docker_answers():
            postgres_url, redis_url = stack.enter_context(infra.containers())
        postgres_url = postgres_url or infra.LOCAL_POSTGRES
        redis_url = redis_url or infra.LOCAL_REDIS
        if not infra.postgres_answers(postgres_url):
            pytest.exit(
                f"no Postgres at {postgres_url}: start one, set ANONCHAT_TEST_POSTGRES_URL, "
                "or run Docker so that testcontainers can",
                returncode=2,
            )
        if not infra.redis_answers(redis_url):
            pytest.exit(
                f"no Redis at {redis_url}: start one, set ANONCHAT_TEST_REDIS_URL, "
                "or run Docker so that testcontainers can",
                returncode=2,
            )
        yield Servers(postgres_url, redis_url)


def _throwaway_database(servers: Servers, service: str, service_dir: Path) -> Iterator[str]:
    url = infra.with_database(servers.postgres_url, f"anonchat_test_{RUN_ID}_{service}")
    db.create_database(url)
    try:
        db.upgrade(service_dir, url)
        yield url
    finally:
        db.drop_database(url)


@pytest.fixture(scope="session")
def users_database_url(servers: Servers) -> Iterator[str]:
    """A users database of this run's own, migrated to head."""
    yield from _throwaway_database(servers, "users", ROOT / "user_service")


@pytest.fixture(scope="session")
def redis_url(servers: Servers) -> Iterator[str]:
    """A Redis database index that was empty and that this run claimed; flushed after."""
    claim = f"anonchat-test-claim:{RUN_ID}"
    for index in range(15, 0, -1):
        url = infra.with_redis_db(servers.redis_url, index)
        client = redis.Redis.from_url(url)
        if client.dbsize() == 0 and client.set(claim, "1", nx=True) and client.dbsize() == 1:
            break
        client.close()
    else:
        pytest.exit("no empty Redis database index left to claim for the tests", returncode=2)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def user_settings(users_database_url: str) -> UserSettings:
    """user_service settings pointing at this run's database."""
    return UserSettings(
        database_url=users_database_url,
        internal_token=INTERNAL_TOKEN,
        jwt_secret=JWT_SECRET,
        argon2_time_cost=FAST_HASHING["argon2_time_cost"],
        argon2_memory_cost_kib=FAST_HASHING["argon2_memory_cost_kib"],
        argon2_parallelism=FAST_HASHING["argon2_parallelism"],
    )


@pytest.fixture(scope="session")
async def user_service(user_settings: UserSettings) -> AsyncIterator[httpx.AsyncClient]:
    """user_service in process, with its lifespan run, called as the gateway would."""
    app = create_user_service(user_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://user-service",
            headers={"x-internal-token": INTERNAL_TOKEN},
        ) as client:
            yield client


@dataclass
class RunningStack:
    gateway_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    config: StackConfig


@pytest.fixture(scope="session")
def running_stack(users_database_url: str, redis_url: str) -> Iterator[RunningStack]:
    """The real processes (uvicorn), on free ports, as the run command starts them."""
    config = StackConfig(
        users_database_url=users_database_url,
        redis_url=redis_url,
        gateway_port=free_port(),
        user_service_port=free_port(),
        environment={
            "ANONCHAT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "ANONCHAT_JWT_SECRET": JWT_SECRET,
            **FAST_HASHING_ENV,
        },
    )
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for process in stack_processes(config):
            running[process.name] = spawn(process)
            assert process.health_url is not None
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


def unique_name(prefix: str = "u") -> str:
    """A username no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
