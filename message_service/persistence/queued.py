"""What a queued message is, and where Redis keeps it until a worker has stored it.

message_service writes all of it in one script (``message_service.enqueue``); the worker
removes a message's entries once it is stored.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import NotRequired, TypedDict

from common.ratelimit import KEY_PREFIX

QUEUE_NAME = "messages"
PERSIST_JOB = "worker.jobs.persist_batch"
# Hash: message id -> "<job id> <message JSON>", while the message waits to be stored.
PENDING_KEY = "anonchat:pending"
# Announces each stored batch (see ``announcement``). At most once, like all pub/sub: a
# wake-up for readers, never the only copy.
STORED_CHANNEL = "anonchat:stored"
# An announcement carries its batch's messages up to this size; a bigger batch is read
# from Postgres by those who need it.
ANNOUNCED_BYTES = 64 * 1024
# Announces each erased account's id, so that every replica forgets it knew the user.
ERASED_CHANNEL = "anonchat:erased"
# How long an idempotency record outlives its stored message. message_service looks a key
# up in Postgres before it runs the queueing script, so the record must still be there
# for a send that looked before the message was stored and queues after.
IDEMPOTENCY_MARGIN_SECONDS = 60


class PendingMessage(TypedDict):
    """A message accepted and not stored yet, as it waits in Redis (JSON: the timestamp
    is ISO 8601)."""

    id: int
    content: str
    sender_id: int
    receiver_id: int
    created_at: str
    # Hex SHA-256 of the sender's Idempotency-Key, when the send had one.
    idempotency_key: NotRequired[str]


class PendingEntry(PendingMessage):
    """A queued message and the job that carries it."""

    job_id: str


class AnnouncedMessage(TypedDict):
    """A stored message as an announcement carries it: as a stream shows it, and whether
    it is hidden from its receiver."""

    cursor: int
    id: int
    content: str
    sender_id: int
    receiver_id: int
    created_at: str
    hidden: bool


def announcement(up_to: int, ids: list[int], messages: list[AnnouncedMessage]) -> str:
    """The announcement of what one transaction stored: ``{"up_to": <its highest cursor>,
    "ids": [<the ids of the messages stored>], "messages": [...]}``, the messages in cursor
    order. Cursors up to ``up_to`` that ``messages`` lacks (events, or messages too big to
    carry: then there are none) are read from Postgres."""
    body = json.dumps({"up_to": up_to, "ids": ids, "messages": messages}, ensure_ascii=False)
    if len(body.encode()) > ANNOUNCED_BYTES:
        body = json.dumps({"up_to": up_to, "ids": ids, "messages": []})
    return body


def conversation_key(user_a: int, user_b: int) -> str:
    """Sorted set of a conversation's queued message ids, scored by acceptance time."""
    low, high = sorted((user_a, user_b))
    return f"anonchat:conversation:{low}:{high}"


def accepted_score(message: PendingMessage) -> float:
    """A message's acceptance time in microseconds: its place in its conversation."""
    return datetime.fromisoformat(message["created_at"]).timestamp() * 1_000_000


def batch_key(job_id: str) -> str:
    """List of the ids of the messages job ``job_id`` stores."""
    return f"anonchat:batch:{job_id}"


def idempotency_record_key(sender_id: int, key_hash: str) -> str:
    """The record of a send made with an Idempotency-Key, while its message is queued."""
    return f"anonchat:idem:{sender_id}:{key_hash}"


def blocks_key(blocker_id: int) -> str:
    """Set of the users ``blocker_id`` blocks, mirrored from Postgres for the queueing
    script (which refuses a send to them)."""
    return f"anonchat:blocks:{blocker_id}"


def send_rate_key(sender_id: int) -> str:
    """The sender's rate-limit key (GCRA, common/ratelimit.py)."""
    return f"{KEY_PREFIX}send:{sender_id}"


def parse_pending_entry(value: str | bytes) -> PendingEntry:
    """The message and job id of a pending-hash value."""
    text = value.decode() if isinstance(value, bytes) else value
    job_id, _, message = text.partition(" ")
    entry: PendingEntry = json.loads(message)
    entry["job_id"] = job_id
    return entry
