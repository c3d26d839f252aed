"""Storing messages: the one insert, under the lock that orders the storage cursor."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import BigInteger, Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from message_service.persistence.queued import PendingMessage

# Held by every transaction that takes a storage cursor (``seq``) until it commits, so
# that cursors become visible in their order: a reader that has seen cursor N has seen
# every cursor below N that will ever exist.
SEQ_LOCK = 0x616E6F6E  # "anon"

# The batch travels as one JSON array of the messages as queued: Postgres parses it, so
# that no Python code handles each message's fields on the way in. A message already
# stored (same id), or a repeat of a stored send's Idempotency-Key, is skipped. A message
# accepted after its receiver blocked its sender is stored hidden from the receiver.
_INSERT = text(
    """
    INSERT INTO messages
        (id, content, sender_id, receiver_id, created_at, idempotency_key, hidden)
    SELECT m.id, m.content, m.sender_id, m.receiver_id, m.created_at,
           decode(m.idempotency_key, 'hex'),
           EXISTS (
               SELECT 1 FROM blocks AS b
               WHERE b.blocker_id = m.receiver_id AND b.blocked_id = m.sender_id
                 AND b.created_at <= m.created_at
           )
    FROM json_to_recordset(CAST(:batch AS json)) AS m(
        id bigint, content text, sender_id bigint, receiver_id bigint, created_at timestamptz,
        idempotency_key text
    )
    ORDER BY m.created_at, m.id
    ON CONFLICT DO NOTHING
    RETURNING id, seq, hidden
    """
)
# A message refused for good: its sender is told, once, on the stream.
_FAILED = text(
    """
    INSERT INTO events (user_id, kind, message_id, data)
    SELECT sender_id, 'failed', id, data
    FROM json_to_recordset(CAST(:failures AS json)) AS f(id bigint, sender_id bigint, data text)
    ON CONFLICT DO NOTHING
    RETURNING seq
    """
)
REFUSED = "the message could not be stored"
_STORED = text("SELECT id FROM messages WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)


# Held until the transaction ends; message_service takes it too, for the events it writes.
CURSOR_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=SEQ_LOCK)


def take_cursor_lock(connection: Connection) -> None:
    """Hold the cursor lock until the caller's transaction ends."""
    connection.execute(CURSOR_LOCK)


class Stored(NamedTuple):
    """Where a message was stored: its cursor, and whether it is hidden from its receiver."""

    cursor: int
    hidden: bool


def insert_messages(connection: Connection, messages: Sequence[str]) -> dict[int, Stored]:
    """Store ``messages`` (each the JSON of a queued message) in acceptance order, in the
    caller's transaction, which must hold the cursor lock; returns where each message it
    inserted was stored, by id."""
    rows = connection.execute(_INSERT, {"batch": f"[{','.join(messages)}]"})
    return {row.id: Stored(row.seq, row.hidden) for row in rows}


def stored_among(connection: Connection, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are stored."""
    return {row.id for row in connection.execute(_STORED, {"ids": list(ids)})}


def record_failures(connection: Connection, messages: Sequence[PendingMessage]) -> list[int]:
    """Tell each sender that its message was refused for good (in the caller's
    transaction, under the cursor lock); the cursors of the events recorded."""
    failures = [
        {
            "id": m["id"],
            "sender_id": m["sender_id"],
            "data": json.dumps({"id": m["id"], "receiver_id": m["receiver_id"], "reason": REFUSED}),
        }
        for m in messages
    ]
    rows = connection.execute(_FAILED, {"failures": json.dumps(failures)})
    return [row.seq for row in rows]
