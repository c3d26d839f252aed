"""The measurements of anonchat itself: the whole stack with 2 workers on the
benchmark's servers, driven through the gateway."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from redis import Redis

from bench import redis_memory, wrk
from bench.harness import (
    HTTP_SECONDS,
    Progress,
    percentile,
    running,
    scalar,
    send_load,
    stack_databases,
    url,
)
from bench.results import (
    Anonchat,
    Capacity,
    Depth,
    ExactlyOnce,
    Page,
    Persisted,
    Probe,
    RedisMemory,
)
from bench.wrk import Load
from message_service.persistence.queued import PENDING_KEY, QUEUE_NAME, STORED_CHANNEL
from message_service.persistence.rq_layout import queue_key
from stack import infra
from stack.processes import StackConfig, free_port, paused, process_names, stack_processes

SUSTAINED_SECONDS = 20
PROBE_INTERVAL_MS = 20
USERS = 200
PASSWORD = "benchmark password"
# The messages stored in all when get_messages pages through one conversation.
STORED_FOR_READS = 1_000_000
PAGE_SIZE = 50
# Production settings but for these: registering the users is not measured, so hashing
# is cheap; the per-user send limit is lifted (the limiter still runs on every send).
STACK_ENVIRONMENT = {
    "USER_SERVICE_ARGON2_TIME_COST": "1",
    "USER_SERVICE_ARGON2_MEMORY_COST_KIB": "1024",
    "USER_SERVICE_ARGON2_PARALLELISM": "1",
    "MESSAGE_SERVICE_SEND_RATE_PER_USER": "1000000/1",
    "GATEWAY_REGISTER_RATE_PER_ADDRESS": "1000000/1",
    "GATEWAY_LOGIN_RATE_PER_ADDRESS": "1000000/1",
    "ANONCHAT_LOG_LEVEL": "WARNING",
}


def measure(postgres_url: str, redis_url: str, scratch: Path, progress: Progress) -> Anonchat:
    """Every anonchat figure, each process's peak RSS included."""
    with stack_databases(postgres_url, "bench") as urls:
        config = stack_config(urls, redis_url, scratch)
        processes = stack_processes(config)
        services = [p for p in processes if not p.name.startswith("worker")]
        workers = [p for p in processes if p.name.startswith("worker")]
        gateway = url(config.gateway_port)
        peak_rss: dict[str, int] = {}
        with (
            running(services, peak_rss=peak_rss),
            psycopg.connect(infra.libpq(urls["message_service"]), autocommit=True) as db,
            Redis.from_url(redis_url) as redis,
        ):
            progress(f"anonchat: registering {USERS} users")
            users = _register(gateway, USERS)
            users_file = scratch / "users"
            users_file.write_text("".join(f"{uid} {token}\n" for uid, token in users))
            stack = Stack(gateway, users_file, db, redis)
            # The measurements of earlier versions run first, as they did. The waits for
            # the keyed messages' idempotency margin to pass overlap get_messages, which
            # leaves nothing in Redis; the workers run throughout them, so that Redis
            # holds the same workers at both readings.
            with running(workers, peak_rss=peak_rss) as started:
                progress("anonchat: accepted and persisted at the maximum rate")
                accepted, persisted = stack.sustained()
                progress("anonchat: send-to-visible at half the maximum rate")
                visible = stack.send_to_visible(users, rate=accepted.rate / 2)
                progress("anonchat: worker capacity (queue filled, then drained by 2 workers)")
                capacity = stack.capacity(started)
                progress("anonchat: Redis memory of keyed sends queued, the workers paused")
                backlog, stored_at = redis_memory.queued(stack, started, users)
                progress(f"anonchat: get_messages with {STORED_FOR_READS:,} messages stored")
                page = stack.get_messages(users)
                progress("anonchat: Redis memory once the keyed messages' margin has passed")
                first = redis_memory.settled(stack, stored_at)
                progress("anonchat: more keyed sends at the maximum rate")
                stored_at = redis_memory.more(stack)
                once = stack.exactly_once()
                progress("anonchat: Redis memory once their margin has passed")
                second = redis_memory.settled(stack, stored_at)
    return Anonchat(
        accepted=accepted,
        persisted=persisted,
        send_to_visible=visible,
        worker_capacity=capacity,
        redis_memory=RedisMemory(backlog=backlog, first=first, second=second),
        exactly_once=once,
        get_messages=page,
        peak_rss_mb={name: kib / 1024 for name, kib in peak_rss.items()},
    )


def stack_config(
    urls: dict[str, str],
    redis_url: str,
    scratch: Path,
    environment: dict[str, str] | None = None,
) -> StackConfig:
    """A stack of 2 workers on free ports, on the databases of ``urls``, with
    ``STACK_ENVIRONMENT`` and ``environment``."""
    return StackConfig(
        users_database_url=urls["user_service"],
        messages_database_url=urls["message_service"],
        redis_url=redis_url,
        gateway_port=free_port(),
        user_service_port=free_port(),
        message_service_port=free_port(),
        workers=2,
        # Measured as operators run it: every process serving its metrics.
        metrics_ports={name: free_port() for name in process_names(2)},
        # The workers' status file goes with the scratch folder rather than stay in /tmp.
        environment=STACK_ENVIRONMENT
        | {"WORKER_STATUS_FILE": str(scratch / "worker-status")}
        | (environment or {}),
    )


class Stack:
    """Measurements against a running anonchat stack."""

    def __init__(self, gateway: str, users_file: Path, db: psycopg.Connection[Any], redis: Redis):
        self.gateway = gateway
        self.users_file = users_file
        self.db = db
        self.redis = redis
        self.accepted_total = 0
        # Messages written straight into the database, not sent through the gateway.
        self.seeded = 0

    def stored(self) -> int:
        return scalar(self.db, "SELECT count(*) FROM messages")

    def depth(self) -> Depth:
        """Messages accepted but not stored yet, and the jobs waiting to carry them."""
        return Depth(
            messages=int(self.redis.hlen(PENDING_KEY)),
            jobs=int(self.redis.llen(queue_key(QUEUE_NAME))),
        )

    def keyed_stored(self) -> int:
        """Messages stored that were sent with an Idempotency-Key."""
        return scalar(self.db, "SELECT count(*) FROM messages WHERE idempotency_key IS NOT NULL")

    def send(self, seconds: float, **options: Any) -> Load:
        """A send load (see ``harness.send_load``) through the gateway."""
        load = send_load(self.gateway, self.users_file, seconds=seconds, **options)
        self.accepted_total += load.answered_2xx
        return load

    def send_one(self, token: str, receiver: int, *, idempotency_key: str) -> int:
        """One keyed send; its message's id."""
        answer = httpx.post(
            f"{self.gateway}/send_message",
            json={"receiver_id": receiver, "content": f"one send, {idempotency_key}"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key},
            timeout=5,
        ).raise_for_status()
        self.accepted_total += 1
        return int(answer.json()["id"])

    def sustained(self) -> tuple[Load, Persisted]:
        """Sends at the maximum rate for the window plus a lead-in and a tail; persisted
        messages counted over the window, with the queue depth at its ends."""
        self.send(3)
        lead_in = 4
        samples: dict[str, Any] = {}

        def sample() -> None:
            time.sleep(lead_in)
            samples["start"] = (time.perf_counter(), self.stored(), self.depth())
            time.sleep(SUSTAINED_SECONDS)
            samples["end"] = (time.perf_counter(), self.stored(), self.depth())

        sampler = threading.Thread(target=sample)
        sampler.start()
        load = self.send(lead_in + SUSTAINED_SECONDS + 2)
        sampler.join()
        (t0, stored0, depth0), (t1, stored1, depth1) = samples["start"], samples["end"]
        self.wait_drained()
        persisted = Persisted(
            rate=(stored1 - stored0) / (t1 - t0),
            window_seconds=t1 - t0,
            depth_start=depth0,
            depth_end=depth1,
        )
        return load, persisted

    def wait_drained(self, timeout: float = 120) -> float:
        """Wait until every accepted message is stored; returns when that happened."""
        deadline = time.perf_counter() + timeout
        # The pending count is one cheap Redis call; counting rows costs Postgres a scan.
        while self.depth().messages or self.stored() - self.seeded < self.accepted_total:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"messages still queued after {timeout} s: {self.depth()}")
            time.sleep(0.01)
        return time.perf_counter()

    def send_to_visible(self, users: list[tuple[int, str]], *, rate: float) -> Probe:
        """A probe sender beside a wrk load at ``rate``, timed to the announcements of
        the stored batches."""
        with _announcements(self.redis) as seen:
            return self.probe(users, rate=rate, seen=seen)

    def probe(self, users: list[tuple[int, str]], *, rate: float, seen: dict[int, float]) -> Probe:
        """A probe sender (the first user, to the second) beside a wrk load at ``rate``;
        ``seen`` is where another thread notes when each message id is seen."""
        (_, sender_token), (receiver, _) = users[0], users[1]
        connections = 32
        # Each connection sends, waits for the answer, then pauses: its cycle is the
        # pause plus the latency, so a short run at the plain pause measures the latency.
        # At a rate below the probe's own, the load all but stops (a 32 s pause).
        pause = connections * 1000 / max(rate - 1000 / PROBE_INTERVAL_MS, 1)
        latency = self.send(2, connections=connections, delay_ms=pause).p50_ms
        background: dict[str, Load] = {}
        seconds = 10
        thread = threading.Thread(
            target=lambda: background.setdefault(
                "load",
                self.send(
                    seconds + 1,
                    connections=connections,
                    delay_ms=max(pause - latency, 0),
                ),
            )
        )
        answered, latencies = _probe(self.gateway, sender_token, receiver, seconds, thread, seen)
        self.accepted_total += len(answered)
        self.wait_drained()
        load = background["load"]
        return Probe(
            rate=load.rate + len(answered) / seconds,
            background_rate=load.rate,
            samples=len(latencies),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            answered_p50_ms=percentile(answered, 50),
            answered_p99_ms=percentile(answered, 99),
        )

    def capacity(self, workers: list[subprocess.Popen[bytes]]) -> Capacity:
        """Pause the (warm) workers, queue messages at the maximum rate, then time the
        workers draining them from the moment they resume."""
        with paused(workers):
            self.send(8)
            filled = self.depth()
        started = time.perf_counter()
        finished = self.wait_drained()
        return Capacity(
            messages=filled.messages, jobs=filled.jobs, rate=filled.messages / (finished - started)
        )

    def exactly_once(self) -> ExactlyOnce:
        """Every send answered 202 was stored, and no message twice: contents are unique,
        and wrk counts only the answers it read before it stopped (a few more sends may
        have been accepted). The rows get_messages seeds, each of a content of its own,
        are left out."""
        row = self.db.execute("SELECT count(*), count(DISTINCT content) FROM messages").fetchone()
        assert row is not None
        return ExactlyOnce(
            answered=self.accepted_total, stored=row[0] - self.seeded, distinct=row[1] - self.seeded
        )

    def get_messages(self, users: list[tuple[int, str]]) -> Page:
        """Store ``STORED_FOR_READS`` messages in all, then read one conversation page by page."""
        (reader, token), (other, _) = users[0], users[1]
        extra = STORED_FOR_READS - self.stored()
        self.seeded += extra
        ids = [uid for uid, _ in users]
        # Ids are reserved as message_service reserves them, so none can collide.
        first = scalar(
            self.db,
            "UPDATE id_blocks SET next_id = next_id + %s RETURNING next_id - %s",
            (extra, extra),
        )
        self.db.execute(
            """
            INSERT INTO messages (id, content, sender_id, receiver_id, created_at)
            SELECT %(first)s + n, 'stored message ' || n,
                   CASE WHEN n %% 100 = 0 THEN %(reader)s ELSE (%(ids)s)[1 + n %% %(count)s] END,
                   CASE WHEN n %% 100 = 0 THEN %(other)s
                        ELSE (%(ids)s)[1 + (n / %(count)s + n) %% %(count)s] END,
                   now()
            FROM generate_series(0, %(extra)s - 1) AS n
            """,
            {
                "first": first,
                "reader": reader,
                "other": other,
                "ids": ids,
                "count": len(ids),
                "extra": extra,
            },
        )
        self.db.execute("VACUUM ANALYZE messages")
        # Write the seeded pages out now rather than during the measurement.
        self.db.execute("CHECKPOINT")
        stored = self.stored()
        conversation = scalar(
            self.db,
            "SELECT count(*) FROM messages WHERE least(sender_id, receiver_id) = %s "
            "AND greatest(sender_id, receiver_id) = %s",
            (min(reader, other), max(reader, other)),
        )
        middle = scalar(
            self.db,
            "SELECT seq FROM messages WHERE sender_id = %s AND receiver_id = %s "
            "ORDER BY seq OFFSET %s LIMIT 1",
            (reader, other, conversation // 4),
        )
        path = f"/get_messages?with_user={other}&limit={PAGE_SIZE}&cursor={middle}"
        # One reader at a time: the latency of a page, not a queue of readers.
        load = wrk.run(
            self.gateway, ["get", path, token], seconds=HTTP_SECONDS, connections=1, threads=1
        )
        return Page(load=load, stored=stored, conversation=conversation, size=PAGE_SIZE)


@contextlib.contextmanager
def _announcements(redis: Redis) -> Iterator[dict[int, float]]:
    """When each message id was announced as stored, noted by a thread subscribed for
    the block."""
    seen: dict[int, float] = {}
    pubsub = redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(STORED_CHANNEL)
    stop_reading = threading.Event()

    def read() -> None:
        while not stop_reading.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                now = time.perf_counter()
                for stored in json.loads(message["data"])["ids"]:
                    seen[stored] = now

    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield seen
    finally:
        stop_reading.set()
        reader.join()
        pubsub.close()


def _probe(
    gateway: str,
    token: str,
    receiver: int,
    seconds: float,
    background: threading.Thread,
    seen: dict[int, float],
) -> tuple[list[float], list[float]]:
    """Send a message every ``PROBE_INTERVAL_MS`` as one user while ``background`` runs,
    then wait until ``seen`` has each of them (30 s at most).
    Returns the times to the 202 answers and to being seen, in ms."""
    sent: dict[int, float] = {}
    answered: list[float] = []
    background.start()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=5) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            answer = client.post(
                "/send_message", json={"receiver_id": receiver, "content": f"probe {len(sent)}"}
            )
            answer.raise_for_status()
            sent[answer.json()["id"]] = started
            answered.append((time.perf_counter() - started) * 1000)
            time.sleep(max(0.0, PROBE_INTERVAL_MS / 1000 - (time.perf_counter() - started)))
    background.join()
    deadline = time.perf_counter() + 30
    while set(sent) - set(seen) and time.perf_counter() < deadline:
        time.sleep(0.01)
    return answered, [(seen[i] - sent[i]) * 1000 for i in sent if i in seen]


def _register(gateway: str, count: int) -> list[tuple[int, str]]:
    users = []
    with httpx.Client(base_url=gateway, timeout=10) as client:
        for n in range(count):
            body = {"username": f"bench{n}", "password": PASSWORD}
            answer = client.post("/register", json=body)
            answer.raise_for_status()
            token = client.post("/login", json=body).raise_for_status().json()["access_token"]
            users.append((answer.json()["id"], token))
    return users
