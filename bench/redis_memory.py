"""Redis memory of sends made with an Idempotency-Key, as the client library makes them:
what queued messages cost, and that stored ones cost nothing once their idempotency
margin has passed (Redis holds what is in flight, not what has been sent).

Memory is Redis' own count of what it allocated (INFO memory ``used_memory``); each
key's share is its ``MEMORY USAGE``, whole (``SAMPLES 0``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from redis import Redis

from bench.results import Backlog, KeyCost, Settled
from common.ratelimit import GCRA_LUA
from message_service.config import Settings as MessageServiceSettings
from message_service.persistence.queued import (
    IDEMPOTENCY_MARGIN_SECONDS,
    PENDING_KEY,
    QUEUE_NAME,
    batch_key,
    conversation_key,
    idempotency_record_key,
    parse_pending_entry,
    send_rate_key,
)
from message_service.persistence.rq_layout import job_key, queue_key
from stack.processes import paused

if TYPE_CHECKING:
    from bench.anonchat import Stack

# Keyed sends at the maximum rate while the workers are paused, then while they run.
PAUSED_SECONDS = 10
RUNNING_SECONDS = 30
# Past the margin, with a second for Redis to reclaim the expired records.
SETTLE_SECONDS = IDEMPOTENCY_MARGIN_SECONDS + 1
# How far apart two readings of used_memory may be for Redis to count as still.
STILL_BYTES = 1024
# The kinds of key a queued message makes, as the table names them.
PENDING = "pending hash entry"
CONVERSATION = "conversation sorted set member"
BATCH = "batch list entry"
JOB = "RQ job hash, one per batch"
QUEUE = "RQ queue list entry, one per job"
RECORD = "idempotency record"
RATE = "send rate key, one per sender"
# One send counted at the default send rate, measured and dropped in one step (the
# benchmark's stack lifts the rate, so its own keys live a millisecond).
_RATE_KEY_BYTES = (
    GCRA_LUA
    + """
gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())
local bytes = redis.call('MEMORY', 'USAGE', KEYS[1], 'SAMPLES', 0)
redis.call('DEL', KEYS[1])
return bytes
"""
)


def used_memory(redis: Redis, *, timeout: float = 10) -> int:
    """The bytes Redis has allocated, once it holds still: read until two readings half
    a second apart agree within ``STILL_BYTES``, or ``timeout`` has passed. A client's
    buffers count too, and Redis trims them only once it has been idle for 2 s."""
    deadline = time.perf_counter() + timeout
    reading = int(redis.info("memory")["used_memory"])
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        previous, reading = reading, int(redis.info("memory")["used_memory"])
        if abs(reading - previous) < STILL_BYTES:
            break
    return reading


def queued(
    stack: Stack, workers: list[subprocess.Popen[bytes]], users: list[tuple[int, str]]
) -> tuple[Backlog, float]:
    """With the workers paused: one keyed send, then keyed sends at the maximum rate;
    then the workers store them all. Returns the figures, and when the last message was
    stored."""
    (sender, token), (receiver, _) = users[0], users[1]
    redis = stack.redis
    rate_key = KeyCost(RATE, _rate_key_bytes(redis, sender), None)
    with paused(workers):
        _wait_unblocked(redis)
        start = used_memory(redis)
        stack.send_one(token, receiver, idempotency_key="bench-lone-send")
        lone = _costs(redis)
        stack.send(PAUSED_SECONDS, keyed=True)
        filled = used_memory(redis)
        depth = stack.depth()
        backlog = _costs(redis)
    stored_at = stack.wait_drained()
    figures = Backlog(
        messages=depth.messages,
        jobs=depth.jobs,
        queued_bytes=filled - start,
        drained_bytes=used_memory(redis) - start,
        keys=[KeyCost(kind, round(lone[kind]), backlog[kind]) for kind in lone] + [rate_key],
    )
    return figures, stored_at


def more(stack: Stack) -> float:
    """Keyed sends at the maximum rate with the workers running; when the last was
    stored."""
    stack.send(RUNNING_SECONDS, keyed=True)
    return stack.wait_drained()


def settled(stack: Stack, stored_at: float) -> Settled:
    """Redis ``SETTLE_SECONDS`` after ``stored_at``, when the last message was stored."""
    time.sleep(max(0.0, stored_at + SETTLE_SECONDS - time.perf_counter()))
    redis = stack.redis
    memory = used_memory(redis)
    return Settled(
        keyed_stored=stack.keyed_stored(),
        used_memory=memory,
        clients=int(redis.info("clients")["connected_clients"]),
        slow_log=int(redis.slowlog_len()),
        keys={key.decode(): _usage(redis, [key.decode()]) for key in redis.scan_iter(count=1000)},
        stats=cast("dict[str, object]", redis.memory_stats()),
    )


def _wait_unblocked(redis: Redis, timeout: float = 30) -> None:
    """Until no client waits on a blocking command: a paused worker that was blocked on
    the queue would still take the first job pushed onto it, out of the queue list."""
    deadline = time.perf_counter() + timeout
    while any("b" in client["flags"] for client in redis.client_list()):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"a client still blocks after {timeout} s")
        time.sleep(0.05)


def _costs(redis: Redis) -> dict[str, float]:
    """Each kind of key the queued messages make, in bytes per queued message; the
    keys are found from the messages' pending entries."""
    raw = cast("list[bytes]", redis.hvals(PENDING_KEY))
    entries = [parse_pending_entry(value) for value in raw]
    jobs = {entry["job_id"] for entry in entries}
    records = [
        idempotency_record_key(entry["sender_id"], entry["idempotency_key"])
        for entry in entries
        if "idempotency_key" in entry
    ]
    count = len(entries)
    return {
        PENDING: _usage(redis, [PENDING_KEY]) / count,
        CONVERSATION: _usage(
            redis, {conversation_key(e["sender_id"], e["receiver_id"]) for e in entries}
        )
        / count,
        BATCH: _usage(redis, (batch_key(job) for job in jobs)) / count,
        JOB: _usage(redis, (job_key(job) for job in jobs)) / count,
        QUEUE: _usage(redis, [queue_key(QUEUE_NAME)]) / count,
        RECORD: _usage(redis, records) / len(records),
    }


def _usage(redis: Redis, keys: Iterable[str]) -> int:
    """The bytes of ``keys`` in all (MEMORY USAGE, every element counted)."""
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes: list[int | None] = pipe.execute()
    return sum(size or 0 for size in sizes)


def _rate_key_bytes(redis: Redis, sender: int) -> int:
    """The bytes of a sender's rate key after one send, at message_service's default
    send rate."""
    rate = MessageServiceSettings.model_fields["send_rate_per_user"].default
    script = redis.register_script(_RATE_KEY_BYTES)
    return int(script(keys=[send_rate_key(sender)], args=[rate.interval_ms, rate.burst_ms]))
