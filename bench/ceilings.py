"""This machine's ceilings, with nothing of anonchat in between, and the original
design's shape as the baseline: Postgres inserts, RQ's enqueue, a bare endpoint (one
hop), the same behind a bare forwarding gateway (two hops), and Flask with one insert
per send."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine

from bench.baseline import Base as BaselineBase
from bench.harness import Progress, running, scalar, send_load, url
from bench.results import Baseline, Ceilings, Machine
from bench.wrk import Load
from stack import databases, infra
from stack.processes import Process, free_port, uvicorn

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
STORAGE_SECONDS = 3


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
    benchmark's own Redis, emptied afterwards; no worker runs them)."""
    redis = Redis.from_url(redis_url)
    queue = Queue("ceiling", connection=redis, serializer=JSONSerializer)
    message = {"id": 1, "content": "benchmark message", "sender_id": 1, "receiver_id": 2}
    try:

        def enqueue() -> int:
            queue.enqueue("bench.ceilings.noop", messages=[message], result_ttl=0)
            return 1

        return _rate(seconds, enqueue)
    finally:
        redis.flushdb()
        redis.close()


def measure(postgres_url: str, redis_url: str, users_file: Path, progress: Progress) -> Ceilings:
    """Postgres inserts and RQ's enqueue (each for ``STORAGE_SECONDS``), then the send
    load against the bare endpoint and through the bare gateway."""
    progress("ceilings: Postgres inserts, RQ enqueue")
    one_row, batched = postgres_inserts(infra.libpq(postgres_url), seconds=STORAGE_SECONDS)
    enqueue = rq_enqueue(redis_url, seconds=STORAGE_SECONDS)
    progress("ceilings: one hop, two hops")
    one_hop, two_hops = _hops(users_file)
    return Ceilings(
        postgres_one_row_per_commit=one_row,
        postgres_batched=batched,
        rq_enqueue=enqueue,
        one_hop=one_hop,
        two_hops=two_hops,
    )


def _hops(users_file: Path) -> tuple[Load, Load]:
    echo_port, forwarder_port = free_port(), free_port()
    echo = uvicorn("echo", "bench.echo", echo_port, {})
    forwarder = uvicorn(
        "forwarder", "bench.forwarder", forwarder_port, {"BENCH_UPSTREAM": url(echo_port)}
    )
    with running([echo]):
        one_hop = send_load(url(echo_port), users_file)
        with running([forwarder]):
            two_hops = send_load(url(forwarder_port), users_file)
    return one_hop, two_hops


def baseline(postgres_url: str, users_file: Path, progress: Progress) -> Baseline:
    """The send load against Flask under gunicorn, in a database of its own."""
    progress("baseline: Flask under gunicorn, one insert per send")
    database = infra.with_database(postgres_url, "bench_baseline")
    databases.create_database(database)
    engine = create_engine(database)
    BaselineBase.metadata.create_all(engine)
    engine.dispose()
    port = free_port()
    gunicorn = Process(
        "baseline",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers=2",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            "bench.baseline:app",
        ],
        {"BENCH_BASELINE_DATABASE_URL": database},
        f"{url(port)}/healthz",
    )
    try:
        with running([gunicorn]):
            load = send_load(url(port), users_file)
        with psycopg.connect(infra.libpq(database)) as connection:
            stored = scalar(connection, "SELECT count(*) FROM baseline_messages")
    finally:
        databases.drop_database(database)
    return Baseline(load=load, stored=stored)


def machine(postgres_url: str, redis_url: str) -> Machine:
    """This machine's processor, the cores the benchmark may use, Python, the system,
    and the versions of the Postgres and Redis servers measured."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with (
        psycopg.connect(infra.libpq(postgres_url)) as connection,
        Redis.from_url(redis_url) as redis,
    ):
        row = connection.execute("SHOW server_version").fetchone()
        postgres = str(row[0] if row else "")
        redis_version = str(redis.info("server")["redis_version"])
    return Machine(
        cpu=cpu,
        cores=len(os.sched_getaffinity(0)),
        python=platform.python_version(),
        system=platform.platform(),
        postgres=postgres,
        redis=redis_version,
    )
