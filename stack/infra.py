"""Finding the Postgres and Redis servers the stack and the tests use."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import redis
from sqlalchemy.engine import make_url

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def libpq(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as libpq takes it (psycopg.connect)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_answers(url: str) -> bool:
    """True when the Postgres server at ``url`` accepts a connection."""
    try:
        with psycopg.connect(libpq(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def redis_answers(url: str) -> bool:
    """True when the Redis server at ``url`` answers PING."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def docker_answers() -> bool:
    """True when a Docker engine answers, so that testcontainers can start servers."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(3)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return sock.recv(64).split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


@contextlib.contextmanager
def containers() -> Iterator[tuple[str, str]]:
    """Throwaway Postgres and Redis containers; yields their URLs."""
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    with (
        PostgresContainer("postgres:15-alpine", driver="psycopg") as postgres,
        RedisContainer("redis:7-alpine") as redis_container,
    ):
        host = redis_container.get_container_host_ip()
        port = redis_container.get_exposed_port(6379)
        yield postgres.get_connection_url(), f"redis://{host}:{port}/0"


def with_database(url: str, database: str) -> str:
    """``url`` naming another database on the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def with_redis_db(url: str, index: int) -> str:
    """``url`` naming Redis database ``index`` on the same server."""
    return urlsplit(url)._replace(path=f"/{index}").geturl()
