"""The Postgres and Redis a run uses, and its own databases and Redis databases there.

Postgres and Redis come from ANONCHAT_TEST_POSTGRES_URL / ANONCHAT_TEST_REDIS_URL, else
from the local servers on the default ports, else from testcontainers when a Docker engine
answers. Every run creates its own databases and Redis databases and removes them
afterwards; the in-process tests and the end-to-end stack never share one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import redis

from stack import databases, infra

RUN_ID = uuid.uuid4().hex[:10]


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
    yield from throwaway_databases(servers, "unit")


@pytest.fixture(scope="session")
def users_database_url(unit_databases: dict[str, str]) -> str:
    """The in-process tests' users database."""
    return unit_databases["user_service"]


@pytest.fixture(scope="session")
def messages_database_url(unit_databases: dict[str, str]) -> str:
    """The in-process tests' messages database (never the end-to-end stack's)."""
    return unit_databases["message_service"]


def throwaway_databases(servers: Servers, purpose: str) -> Iterator[dict[str, str]]:
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
