"""The storage ceilings: what Redis and Postgres do here with nothing in between."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

CREATE = """
CREATE TABLE ceiling_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content text NOT NULL,
    sender_id bigint NOT NULL,
    receiver_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO ceiling_messages (content, sender_id, receiver_id) VALUES (%s, %s, %s)"
BATCH = 100


def _rate(seconds: float, step: Callable[[], int]) -> float:
    """Call ``step`` (which returns how many items it did) for ``seconds``; items/s."""
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline:
        done += step()
    return done / (now - started)


def postgres_inserts(conninfo: str, *, seconds: float) -> tuple[float, float]:
    """Rows/s inserted one per commit, then ``BATCH`` per commit (executemany)."""
    row = ("benchmark message", 1, 2)
    with psycopg.connect(conninfo) as connection:
        connection.execute(CREATE)
        connection.commit()

        def one() -> int:
            connection.execute(INSERT, row)
            connection.commit()
            return 1

        def batch() -> int:
            with connection.cursor() as cursor:
                cursor.executemany(INSERT, [row] * BATCH)
            connection.commit()
            return BATCH

        one_per_commit = _rate(seconds, one)
        batched = _rate(seconds, batch)
        connection.execute("DROP TABLE ceiling_messages")
        connection.commit()
    return one_per_commit, batched


def rq_enqueue(redis_url: str, *, seconds: float) -> float:
    """Jobs/s enqueued with RQ's ``enqueue`` in a loop, one message per job (on the
    benchmark's own Redis, emptied afterwards)."""
    redis = Redis.from_url(redis_url)
    queue = Queue("ceiling", connection=redis, serializer=JSONSerializer)
    message = {"id": 1, "content": "benchmark message", "sender_id": 1, "receiver_id": 2}
    try:

        def enqueue() -> int:
            queue.enqueue("bench.raw.noop", messages=[message], result_ttl=0)
            return 1

        return _rate(seconds, enqueue)
    finally:
        redis.flushdb()
        redis.close()
