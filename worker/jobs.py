"""The jobs message_service enqueues (by dotted path, with JSON arguments)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from functools import lru_cache

from redis import Redis
from rq import get_current_job
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError

from message_service.persistence import PENDING_KEY, insert_messages, user_channel
from worker.config import get_settings
from worker.ordering import Queued, acceptance_order, give_up_on, held_back, unchanged

log = logging.getLogger(__name__)
HOLD_POLL_SECONDS = 0.005
MAX_HOLD_POLL_SECONDS = 0.01
QUEUED_HOLD_SECONDS = 0.1


class PoisonMessages(Exception):
    """Messages the database refuses for good; the rest of their batch was stored."""


@lru_cache
def engine() -> Engine:
    """This process's engine, built on first use (never before a fork)."""
    settings = get_settings()
    return create_engine(
        settings.database_url,
        pool_size=2,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 5,
            # A worker killed inside a transaction leaves its session idle in it, holding
            # the seq lock every other worker needs, until Postgres ends such sessions.
            "options": (
                f"-c statement_timeout={settings.statement_timeout_ms} "
                f"-c idle_in_transaction_session_timeout={settings.idle_in_transaction_ms}"
            ),
        },
    )


def persist_batch(batch: str) -> int:
    """Store the messages of the ``batch`` list exactly once, each conversation in
    acceptance order, then announce each one to its receiver and drop the list.

    A job that runs again (a retry, or a requeue after its worker died) inserts nothing it
    already inserted. Transient database errors propagate so that RQ retries the job with
    backoff; a message the database refuses for good is isolated so that the others of its
    batch are stored, and the job then fails naming it, for an operator to look at.
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("persist_batch runs inside an RQ job")
    redis: Redis = job.connection
    # The database first: while it is down, fail at once (RQ retries later) rather than
    # spend the ordering hold polling Redis for nothing.
    with engine().connect() as connection:
        # The job has left the queue, so nothing is appended to its batch any more.
        messages = acceptance_order(Queued.parse(raw) for raw in redis.lrange(batch, 0, -1))
        stored = _persist_in_order(redis, connection, messages)
    redis.delete(batch)
    return stored


def _persist_in_order(redis: Redis, connection: Connection, remaining: list[Queued]) -> int:
    started = time.monotonic()
    hold = get_settings().order_hold_seconds
    stored = 0
    refused: list[int] = []
    while remaining:
        ready, held = _wait_for_ready(redis, remaining, started, hold)
        inserted, bad = _store(connection, ready)
        _after_commit(redis, ready, inserted, bad)
        stored += len(inserted)
        refused += bad
        remaining = [m for m in remaining if m.id in held]
    if refused:
        raise PoisonMessages(f"the database refused messages {refused}")
    return stored


def _wait_for_ready(
    redis: Redis, remaining: list[Queued], started: float, hold: float
) -> tuple[list[Queued], set[int]]:
    """The messages of ``remaining`` free to be stored now, and the ids of those held,
    once at least one is free. While all are held, only the blockers are watched."""
    blockers = held_back(redis, remaining)
    poll = HOLD_POLL_SECONDS
    while True:
        waited = time.monotonic() - started
        # Behind a running job, wait up to the hold; behind one still queued (it is about
        # to start, or it sits behind this one on a lone worker) only briefly.
        expired = [
            member
            for member, blocker in blockers.items()
            if waited > (hold if blocker.running else min(hold, QUEUED_HOLD_SECONDS))
        ]
        give_up_on(expired)
        held = set().union(*(b.waiting for m, b in blockers.items() if m not in expired))
        ready = [m for m in remaining if m.id not in held]
        if ready:
            return ready, held
        time.sleep(poll)
        poll = min(poll * 2, MAX_HOLD_POLL_SECONDS)
        if not unchanged(redis, blockers):
            blockers = held_back(redis, remaining)


def _store(connection: Connection, messages: list[Queued]) -> tuple[set[int], list[int]]:
    """Insert ``messages`` in one transaction; if the database refuses it for anything but
    a transient fault, one by one, returning the ids it refused."""
    try:
        with connection.begin():
            return insert_messages(connection, [m.raw for m in messages]), []
    except OperationalError:
        raise
    except DBAPIError:
        if len(messages) == 1:
            log.exception("the database refused message %s", messages[0].id)
            return set(), [messages[0].id]
    inserted: set[int] = set()
    refused: list[int] = []
    for message in messages:
        one_inserted, one_refused = _store(connection, [message])
        inserted |= one_inserted
        refused += one_refused
    return inserted, refused


def _after_commit(
    redis: Redis, messages: list[Queued], inserted: set[int], refused: list[int]
) -> None:
    """Drop the batch from the queued bookkeeping; announce what was inserted."""
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        by_conversation[message.conversation].append(str(message.id))
    done = [str(m.id) for m in messages if m.id not in refused]
    with redis.pipeline(transaction=False) as pipe:
        for key, members in by_conversation.items():
            pipe.zrem(key, *members)
        if done:
            pipe.hdel(PENDING_KEY, *done)
        for message in messages:
            if message.id in inserted:
                pipe.publish(user_channel(message.message["receiver_id"]), message.raw)
        pipe.execute()
