"""The queue contract between message_service and the worker, and the one function that
stores messages. The worker imports this module (and the models), nothing else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from sqlalchemy import Connection, text

QUEUE_NAME = "messages"
PERSIST_JOB = "worker.jobs.persist_batch"
# Hash: message id -> "<job id> <message JSON>", while the message is queued.
PENDING_KEY = "anonchat:pending"
# Held while a batch is inserted, so that ``seq`` values become visible in their order.
SEQ_LOCK = 0x616E6F6E  # "anon"


class QueuedMessage(TypedDict):
    """A message as it travels in a job (JSON: the timestamp is ISO 8601)."""

    id: int
    content: str
    sender_id: int
    receiver_id: int
    created_at: str


def conversation_key(user_a: int, user_b: int) -> str:
    """Sorted set of a conversation's queued message ids, scored by acceptance time."""
    low, high = sorted((user_a, user_b))
    return f"anonchat:conversation:{low}:{high}"


def accepted_score(message: QueuedMessage) -> float:
    """A message's acceptance time in microseconds: its place in its conversation."""
    return datetime.fromisoformat(message["created_at"]).timestamp() * 1_000_000


def user_channel(user_id: int) -> str:
    """The pub/sub channel that announces each stored message to its receiver."""
    return f"anonchat:user:{user_id}"


class PendingEntry(QueuedMessage):
    """A queued message and the job that carries it."""

    job_id: str


def batch_key(job_id: str) -> str:
    """List of the messages (JSON) that job ``job_id`` stores."""
    return f"anonchat:batch:{job_id}"


def pending_entry(message_json: str, job_id: str) -> str:
    """The pending-hash value of a queued message (the queue's Lua script builds the same)."""
    return f"{job_id} {message_json}"


def parse_pending_entry(value: str | bytes) -> PendingEntry:
    """The message and job id of a pending-hash value."""
    text = value.decode() if isinstance(value, bytes) else value
    job_id, _, message = text.partition(" ")
    entry: PendingEntry = json.loads(message)
    entry["job_id"] = job_id
    return entry


# The batch travels as one JSON array of the messages as queued: Postgres parses it, so
# that no Python code handles each message's fields on the way in.
_INSERT = text(
    """
    INSERT INTO messages (id, content, sender_id, receiver_id, created_at)
    SELECT id, content, sender_id, receiver_id, created_at
    FROM json_to_recordset(CAST(:batch AS json)) AS m(
        id bigint, content text, sender_id bigint, receiver_id bigint, created_at timestamptz
    )
    ORDER BY created_at, id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)


def insert_messages(connection: Connection, messages: Sequence[str]) -> set[int]:
    """Store ``messages`` (each the JSON of a ``QueuedMessage``) in the caller's
    transaction, skipping ids already stored (so a job that runs twice stores each message
    once); returns the ids it inserted."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQ_LOCK})
    rows = connection.execute(_INSERT, {"batch": f"[{','.join(messages)}]"})
    return {row[0] for row in rows}
