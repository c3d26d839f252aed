"""The worker's health probe, for container healthchecks: ``python -m worker.check``.

Exits 0 when Redis and Postgres answer and a worker of this host is registered with
RQ (its registration expires when it stops sending heartbeats), else prints what is
wrong and exits 1.
"""

from __future__ import annotations

import socket
import sys

import psycopg
from redis import Redis, RedisError
from rq import Queue, Worker
from sqlalchemy.engine import make_url

from message_service.persistence.queued import QUEUE_NAME
from worker.config import Settings, get_settings


def problems(settings: Settings | None = None) -> list[str]:
    """What keeps this host's worker from working; empty when nothing does."""
    settings = settings or get_settings()
    found: list[str] = []
    url = make_url(settings.database_url).set(drivername="postgresql")
    try:
        with psycopg.connect(url.render_as_string(hide_password=False), connect_timeout=3):
            pass
    except psycopg.Error:
        found.append("postgres unavailable")
    try:
        with Redis.from_url(settings.redis_url, socket_timeout=3) as redis:
            hostname = socket.gethostname()
            queue = Queue(QUEUE_NAME, connection=redis)
            if not any(w.hostname == hostname for w in Worker.all(queue=queue)):
                found.append(f"no worker registered on {hostname}")
    except RedisError:
        found.append("redis unavailable")
    return found


def main() -> int:
    """Print the problems, if any; 0 when there are none."""
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)  # noqa: T201
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
