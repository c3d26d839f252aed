"""The job message_service enqueues (by dotted path, with JSON arguments): storing a batch
of queued messages exactly once, each conversation in acceptance order.

Order without waiting: before storing its messages, a job looks in each of their
conversations for messages accepted earlier and still queued in other jobs, and stores
those too, in the same transaction and in acceptance order. Whatever order jobs run in
(several workers, a retry, a dead worker's job requeued late), a message is never stored
before an earlier one of its conversation; the other job later finds them stored and
skips them. A message is stored only if its pending entry is still there once the
cursor lock is held, so a message deleted while queued is never stored.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import psycopg
from redis import Redis
from rq import get_current_job
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from common.metrics import dependency_error
from message_service.persistence.queued import (
    IDEMPOTENCY_MARGIN_SECONDS,
    PENDING_KEY,
    STORED_CHANNEL,
    AnnouncedMessage,
    PendingEntry,
    accepted_score,
    announcement,
    conversation_key,
    idempotency_record_key,
    parse_pending_entry,
)
from message_service.persistence.store import (
    Stored,
    insert_messages,
    record_failures,
    stored_among,
    take_cursor_lock,
)
from worker import metrics
from worker.config import Settings

log = logging.getLogger(__name__)
FIRST_DATABASE_RETRY_SECONDS = 0.1
# A job needs one connection at a time; a second lets a retry start while the first
# is being thrown away.
DATABASE_POOL_SIZE = 2
DATABASE_CONNECT_TIMEOUT_SECONDS = 5
# SQLSTATE classes and codes that mean the server is gone, not that it refused the data.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


class PoisonMessages(Exception):
    """Messages the database refuses for good; the rest of their batch was stored."""


def create_database_engine(settings: Settings) -> Engine:
    """The engine a worker process stores with, built where it runs jobs."""
    return create_engine(
        settings.database_url,
        pool_size=DATABASE_POOL_SIZE,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": DATABASE_CONNECT_TIMEOUT_SECONDS,
            # A worker killed inside a transaction leaves its session idle in it, holding
            # the cursor lock every other worker needs, until Postgres ends such sessions.
            "options": (
                f"-c statement_timeout={settings.statement_timeout_ms} "
                f"-c idle_in_transaction_session_timeout={settings.idle_in_transaction_ms}"
            ),
        },
    )


@dataclass
class JobContext:
    """What jobs use, installed by the worker process that runs them."""

    settings: Settings
    engine: Engine
    # Called at least every database_retry_max_seconds while a job waits for Postgres:
    # the worker renews the job's heartbeat, so that the job keeps its place.
    keep_alive: Callable[[], None] = field(default=lambda: None)
    # Told why the worker cannot work (None once it can again), for its health probe.
    report: Callable[[str | None], None] = field(default=lambda state: None)


_installed: JobContext | None = None


def install(context: JobContext) -> None:
    """Make ``context`` what this process's jobs use."""
    global _installed
    _installed = context


def _context() -> JobContext:
    if _installed is None:
        raise RuntimeError("no JobContext installed: jobs run in a worker (worker.main)")
    return _installed


@dataclass(frozen=True)
class _Queued:
    """A pending message: its JSON as queued, and where it sits."""

    id: int
    raw: str
    entry: PendingEntry

    @classmethod
    def parse(cls, message_id: int, value: bytes) -> _Queued:
        entry = parse_pending_entry(value)
        _, _, raw = value.decode().partition(" ")
        return cls(message_id, raw, entry)

    @property
    def conversation(self) -> str:
        return conversation_key(self.entry["sender_id"], self.entry["receiver_id"])


@dataclass
class _Outcome:
    """What one transaction did with the candidates it found still pending."""

    handled: list[_Queued] = field(default_factory=list)
    stored: dict[int, Stored] = field(default_factory=dict)
    refused: list[_Queued] = field(default_factory=list)
    # The cursors of the events that told senders of refused messages.
    told: list[int] = field(default_factory=list)


def persist_batch(batch: str) -> int:
    """Store the messages of the ``batch`` list (and the earlier ones of their
    conversations) exactly once, announce them, and drop the list once all are stored.

    A job that runs again (a retry, or a requeue after its worker died) inserts nothing
    already inserted. While Postgres cannot be reached, the job waits for it (and keeps
    its place). Other database errors propagate so that RQ retries the job with backoff;
    a message the database refuses for good is set apart so that the others are stored,
    and the job then fails naming it, for an operator to look at."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("persist_batch runs inside an RQ job")
    redis: Redis = job.connection
    context = _context()
    own_ids = [int(member) for member in redis.lrange(batch, 0, -1)]
    own = _pending(redis, own_ids)
    candidates = [*own, *_earlier_in_conversations(redis, own.values())]
    outcome = _store_waiting(context, redis, candidates, set(own)) if candidates else _Outcome()
    _after_commit(redis, outcome, own)
    metrics.stored(m.entry for m in outcome.handled if m.id in outcome.stored)
    refused = [message.id for message in outcome.refused if message.id in own]
    if refused:
        # The list stays for a retry or a requeue, which finds only these still pending.
        raise PoisonMessages(f"the database refused messages {refused}")
    redis.delete(batch)
    return len(outcome.stored)


def _pending(redis: Redis, ids: list[int]) -> dict[int, _Queued]:
    """The messages of ``ids`` still waiting to be stored."""
    if not ids:
        return {}
    values = cast("list[bytes | None]", redis.hmget(PENDING_KEY, [str(i) for i in ids]))
    return {i: _Queued.parse(i, v) for i, v in zip(ids, values, strict=True) if v is not None}


def _earlier_in_conversations(redis: Redis, own: Iterable[_Queued]) -> list[int]:
    """Ids of messages queued in other jobs that were accepted before ours in our
    conversations. One pipelined round trip, whatever the number of conversations."""
    latest: dict[str, float] = {}
    ours: set[int] = set()
    for message in own:
        ours.add(message.id)
        score = accepted_score(message.entry)
        latest[message.conversation] = max(score, latest.get(message.conversation, score))
    with redis.pipeline(transaction=False) as pipe:
        for key, score in latest.items():
            pipe.zrange(key, "-inf", score, byscore=True)
        found: list[list[bytes]] = pipe.execute()
    return [int(m) for members in found for m in members if int(m) not in ours]


def _store_waiting(
    context: JobContext, redis: Redis, candidates: list[int], own: set[int]
) -> _Outcome:
    """Store the candidates still pending; while Postgres cannot be reached, wait for it."""
    delay = FIRST_DATABASE_RETRY_SECONDS
    waiting_since: float | None = None
    while True:
        try:
            with context.engine.connect() as connection:
                outcome = _store(connection, redis, candidates, own)
        except DBAPIError as exc:
            if not unreachable(exc):
                raise
            dependency_error("postgres")
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("waiting for the database: %s", exc.orig)
                context.report("waiting for the database")
            context.keep_alive()
            time.sleep(delay)
            delay = min(delay * 2, context.settings.database_retry_max_seconds)
            continue
        if waiting_since is not None:
            log.warning("the database answers again after %.1f s", time.monotonic() - waiting_since)
            context.report(None)
        return outcome


def unreachable(exc: DBAPIError) -> bool:
    """Whether the error means Postgres cannot be reached (rather than refusing what was
    sent): the connection failed or was lost, or the server is shutting down or starting."""
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state is None:
        return isinstance(exc.orig, psycopg.OperationalError)
    return str(state).startswith(_UNREACHABLE_STATES)


def _store(connection: Connection, redis: Redis, candidates: list[int], own: set[int]) -> _Outcome:
    """In one transaction, under the cursor lock: the candidates still pending, inserted
    in acceptance order; one by one, in a second transaction, if the database refuses the
    whole (the senders of this job's refused messages are told on their streams)."""
    try:
        with connection.begin():
            take_cursor_lock(connection)
            live = list(_pending(redis, candidates).values())
            stored = insert_messages(connection, [m.raw for m in live]) if live else {}
            outcome = _Outcome(handled=live, stored=stored)
            _note_repeats(connection, outcome)
            return outcome
    except DBAPIError as exc:
        if unreachable(exc):
            raise
    outcome = _Outcome()
    with connection.begin():
        take_cursor_lock(connection)
        for message in _pending(redis, candidates).values():
            try:
                with connection.begin_nested():
                    outcome.stored |= insert_messages(connection, [message.raw])
                outcome.handled.append(message)
            except DBAPIError as exc:
                if unreachable(exc):
                    raise
                log.error("the database refused message %s: %s", message.id, exc.orig)
                outcome.refused.append(message)
        outcome.told = record_failures(
            connection, [m.entry for m in outcome.refused if m.id in own]
        )
        _note_repeats(connection, outcome)
    return outcome


def _note_repeats(connection: Connection, outcome: _Outcome) -> None:
    """Log the messages skipped as repeats of a stored send's Idempotency-Key (accepted
    while Postgres could not be asked, so they got an id of their own)."""
    skipped = [m.id for m in outcome.handled if m.id not in outcome.stored]
    if not skipped:
        return
    repeats = set(skipped) - stored_among(connection, skipped)
    for message_id in sorted(repeats):
        log.warning("message %s repeats a stored send's Idempotency-Key: not stored", message_id)


def _after_commit(redis: Redis, outcome: _Outcome, own: dict[int, _Queued]) -> None:
    """Drop what is stored from the queue's bookkeeping and announce it. A refused
    message of this job leaves its conversation (nothing waits for it any more) but keeps
    its pending entry, which says it failed; one of another job is left to that job."""
    by_conversation: dict[str, list[str]] = defaultdict(list)
    leaving = outcome.handled + [m for m in outcome.refused if m.id in own]
    for message in leaving:
        by_conversation[message.conversation].append(str(message.id))
    with redis.pipeline(transaction=False) as pipe:
        for key, members in by_conversation.items():
            pipe.zrem(key, *members)
        if outcome.handled:
            pipe.hdel(PENDING_KEY, *(str(m.id) for m in outcome.handled))
        for message in outcome.handled:
            key_hash = message.entry.get("idempotency_key")
            if key_hash is not None and message.id in outcome.stored:
                record = idempotency_record_key(message.entry["sender_id"], key_hash)
                pipe.expire(record, IDEMPOTENCY_MARGIN_SECONDS)
        if outcome.stored or outcome.told:
            pipe.publish(STORED_CHANNEL, _announcement(outcome))
        pipe.execute()


def _announcement(outcome: _Outcome) -> str:
    """What the transaction stored, announced with the messages themselves, so that the
    streams' hubs need not read them back."""
    messages: list[AnnouncedMessage] = [
        {
            "cursor": stored.cursor,
            "id": message.id,
            "content": message.entry["content"],
            "sender_id": message.entry["sender_id"],
            "receiver_id": message.entry["receiver_id"],
            "created_at": message.entry["created_at"],
            "hidden": stored.hidden,
        }
        for message in outcome.handled
        if (stored := outcome.stored.get(message.id)) is not None
    ]
    messages.sort(key=lambda m: m["cursor"])
    up_to = max([*(m["cursor"] for m in messages), *outcome.told])
    return announcement(up_to, list(outcome.stored), messages)
