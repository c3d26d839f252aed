"""The services in process and RQ workers run in the test's own process, on the unit
databases and Redis database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import redis
from fastapi import FastAPI

from message_service.app import create_app as create_message_service
from message_service.config import Settings as MessageSettings
from stack.processes import free_port
from tests.harness.settings import FAST_HASHING, INTERNAL_TOKEN, JWT_SECRET
from user_service.app import create_app as create_user_service
from user_service.config import Settings as UserSettings
from worker import jobs
from worker.config import Settings as WorkerSettings
from worker.main import build_worker


@pytest.fixture(scope="session")
def user_settings(users_database_url: str, unit_redis_url: str) -> UserSettings:
    """user_service settings pointing at this run's database."""
    return UserSettings(
        database_url=users_database_url,
        redis_url=unit_redis_url,
        internal_token=INTERNAL_TOKEN,
        jwt_secret=JWT_SECRET,
        argon2_time_cost=FAST_HASHING["argon2_time_cost"],
        argon2_memory_cost_kib=FAST_HASHING["argon2_memory_cost_kib"],
        argon2_parallelism=FAST_HASHING["argon2_parallelism"],
        metrics_port=0,
    )


async def started(app: FastAPI) -> AsyncIterator[FastAPI]:
    """``app`` with its lifespan run around the fixture's use."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def user_app(user_settings: UserSettings) -> AsyncIterator[FastAPI]:
    """user_service in process, with its lifespan run."""
    async for app in started(create_user_service(user_settings)):
        yield app


@pytest.fixture(scope="session")
async def user_service(user_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the in-process user_service, calling as the gateway would."""
    async with internal_client(user_app) as client:
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
        metrics_port=0,
    )


@pytest.fixture(scope="session")
async def message_app(message_settings: MessageSettings) -> AsyncIterator[FastAPI]:
    """message_service in process, with its lifespan run."""
    async for app in started(create_message_service(message_settings)):
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
