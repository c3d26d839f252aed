"""The test harness: throwaway databases and a Redis db of our own, the apps in process,
and the real processes on free ports.

Postgres and Redis come from ANONCHAT_TEST_POSTGRES_URL / ANONCHAT_TEST_REDIS_URL, else
from the local servers on the default ports, else from testcontainers when a Docker engine
answers. Every run
creates its own databases and Redis db and removes them afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import redis
from fastapi import FastAPI

from message_service.app import create_app as create_message_service
from message_service.config import Settings as MessageSettings
from stack import databases, infra
from stack.processes import (
    StackConfig,
    free_port,
    spawn,
    stack_processes,
    stop,
    wait_healthy,
)
from user_service.app import create_app as create_user_service
from user_service.config import Settings as UserSettings
from worker import jobs
from worker.config import Settings as WorkerSettings
from worker.main import build_worker

RUN_ID = uuid.uuid4().hex[:10]
INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
JWT_SECRET = "test-jwt-secret-" + uuid.uuid4().hex
# Cheap argon2id parameters, so that registering hundreds of users stays quick.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024, "argon2_parallelism": 1}
# The session's stack is not where rate limits are tested (tests/test_security_e2e.py
# starts gateways of its own for that): lift them so that tests never wait on them.
NO_RATE_LIMITS = dict.fromkeys(
    (
        "GATEWAY_LOGIN_RATE_PER_USERNAME",
        "GATEWAY_LOGIN_RATE_PER_ADDRESS",
        "GATEWAY_REGISTER_RATE_PER_ADDRESS",
        "MESSAGE_SERVICE_SEND_RATE_PER_USER",
    ),
    "1000000/1",
)
# A dead worker's job is requeued once its heartbeat lapses, by the next maintenance pass.
QUICK_RECOVERY_ENV = {
    "WORKER_HEARTBEAT_TTL_SECONDS": "4",
    "WORKER_STATEMENT_TIMEOUT_MS": "3000",
    "WORKER_MAINTENANCE_INTERVAL_SECONDS": "1",
    "WORKER_WORKER_TTL_SECONDS": "16",
}
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
    if not postgres_url and infra.postgres_answers(infra.LOCAL_POSTGRES):
        postgres_url = infra.LOCAL_POSTGRES
    if not redis_url and infra.redis_answers(infra.LOCAL_REDIS):
        redis_url = infra.LOCAL_REDIS
    with ExitStack() as stack:
        # Containers only where no server answers: a Docker engine may be up without a
        # registry to pull the images from.
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


@pytest.fixture(scope="session")
def unit_databases(servers: Servers) -> Iterator[dict[str, str]]:
    """A users and a messages database for the in-process tests, migrated to head."""
    yield from _throwaway_databases(servers, "unit")


@pytest.fixture(scope="session")
def users_database_url(unit_databases: dict[str, str]) -> str:
    """The in-process tests' users database."""
    return unit_databases["user_service"]


@pytest.fixture(scope="session")
def messages_database_url(unit_databases: dict[str, str]) -> str:
    """The in-process tests' messages database (never the end-to-end stack's)."""
    return unit_databases["message_service"]


def _throwaway_databases(servers: Servers, purpose: str) -> Iterator[dict[str, str]]:
    urls = databases.create_and_migrate(servers.postgres_url, f"anonchat_test_{RUN_ID}_{purpose}")
    try:
        yield urls
    finally:
        for url in urls.values():
            databases.drop_database(url)


def _claim_redis_db(servers: Servers, purpose: str) -> Iterator[str]:
    claim = f"anonchat-test-claim:{RUN_ID}:{purpose}"
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
def redis_url(servers: Servers) -> Iterator[str]:
    """A Redis database index of the end-to-end stack's own (it was empty; flushed after)."""
    yield from _claim_redis_db(servers, "stack")


@pytest.fixture(scope="session")
def unit_redis_url(servers: Servers) -> Iterator[str]:
    """Another claimed Redis database, for in-process tests that run workers themselves."""
    yield from _claim_redis_db(servers, "unit")


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
    async with app.router.lifespan_context(app), internal_client(app) as client:
        yield client


def internal_client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client of an in-process service, carrying the internal token."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://service",
        headers={"x-internal-token": INTERNAL_TOKEN},
    )


@pytest.fixture(scope="session")
def message_settings(messages_database_url: str, unit_redis_url: str) -> MessageSettings:
    """message_service settings for in-process tests (user_service is not running)."""
    return MessageSettings(
        database_url=messages_database_url,
        redis_url=unit_redis_url,
        internal_token=INTERNAL_TOKEN,
        user_service_url=f"http://127.0.0.1:{free_port()}",
        id_block_size=100,
        retry_intervals=[],
    )


@pytest.fixture(scope="session")
async def message_app(message_settings: MessageSettings) -> AsyncIterator[FastAPI]:
    """message_service in process, with its lifespan run."""
    app = create_message_service(message_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def worker_settings(messages_database_url: str, unit_redis_url: str) -> WorkerSettings:
    """Worker settings for in-process workers."""
    return WorkerSettings(database_url=messages_database_url, redis_url=unit_redis_url)


@pytest.fixture(scope="session")
def job_context(worker_settings: WorkerSettings) -> Iterator[jobs.JobContext]:
    """What the in-process workers' jobs use, with an engine of their own."""
    context = jobs.JobContext(
        settings=worker_settings, engine=jobs.create_database_engine(worker_settings)
    )
    yield context
    context.engine.dispose()


@pytest.fixture
def drain(job_context: jobs.JobContext, unit_redis_url: str) -> Iterator[Callable[[], None]]:
    """Run every queued job to the end in this process (an RQ SimpleWorker in burst mode)."""
    connection = redis.Redis.from_url(unit_redis_url)

    def run() -> None:
        build_worker(job_context, connection).work(burst=True, logging_level="WARNING")

    yield run
    connection.close()


@dataclass
class RunningStack:
    gateway_url: str
    processes: dict[str, subprocess.Popen[bytes]]
    config: StackConfig


def stack_config_for_tests(users_url: str, messages_url: str, redis_url: str) -> StackConfig:
    """A stack for tests: two workers, free ports, quick recovery, no rate limits."""
    return StackConfig(
        users_database_url=users_url,
        messages_database_url=messages_url,
        redis_url=redis_url,
        gateway_port=free_port(),
        user_service_port=free_port(),
        message_service_port=free_port(),
        workers=2,
        environment={
            "ANONCHAT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "ANONCHAT_JWT_SECRET": JWT_SECRET,
            "ANONCHAT_LOG_LEVEL": "WARNING",
            **FAST_HASHING_ENV,
            **QUICK_RECOVERY_ENV,
            **NO_RATE_LIMITS,
        },
    )


@pytest.fixture(scope="session")
def running_stack(servers: Servers, redis_url: str) -> Iterator[RunningStack]:
    """The real processes (uvicorn, RQ workers), on free ports, as the run command starts
    them, on databases of their own."""
    for urls in _throwaway_databases(servers, "e2e"):
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


def unique_name(prefix: str = "u") -> str:
    """A username no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
