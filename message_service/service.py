"""Sending and reading messages. Reads flush nothing; sends never touch Postgres."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from rq.job import Job, JobStatus
from sqlalchemy import BigInteger, Integer, Row, bindparam, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from common.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from common.schemas import MessageQueued, SendMessage
from common.users import KnownUsers
from message_service.ids import IdAllocator
from message_service.models import Message
from message_service.persistence import (
    PENDING_KEY,
    PendingEntry,
    QueuedMessage,
    parse_pending_entry,
)
from message_service.queue import Batcher, Send

IDEMPOTENCY_PENDING_TTL = 60
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Outbox:
    """What a send needs: ids, the receiver check, the queue and the idempotency store."""

    ids: IdAllocator
    users: KnownUsers
    batcher: Batcher
    redis: Redis
    max_content_length: int
    idempotency_ttl: int


async def send_message(
    *, outbox: Outbox, caller: int, data: SendMessage, idempotency_key: str | None
) -> tuple[MessageQueued, bool]:
    """Accept a message onto the queue; returns the answer and whether it is a replay."""
    if data.sender_id is not None and data.sender_id != caller:
        raise Forbidden("you can send messages only as yourself")
    if len(data.content) > outbox.max_content_length:
        problem = f"must be at most {outbox.max_content_length} characters long"
        raise InvalidInput(
            f"content: {problem}", errors=[FieldError(field="content", message=problem)]
        )
    if not await outbox.users.exists(data.receiver_id):
        raise NotFound("no such receiver")

    record_key = fingerprint = None
    if idempotency_key is not None:
        record_key = _idempotency_record_key(caller, idempotency_key)
        fingerprint = hashlib.sha256(f"{data.receiver_id}:{data.content}".encode()).hexdigest()
        if (replay := await _replay(outbox.redis, record_key, fingerprint)) is not None:
            return replay, True

    message_id = await outbox.ids.next_id()
    if record_key is not None and fingerprint is not None:
        pending = json.dumps({"fingerprint": fingerprint, "state": "pending"})
        reserved = await outbox.redis.set(record_key, pending, nx=True, ex=IDEMPOTENCY_PENDING_TTL)
        if not reserved and (replay := await _replay(outbox.redis, record_key, fingerprint)):
            return replay, True
    # Stamped with no await before the batcher takes it: acceptance times then follow
    # the order in which this replica queues its messages (workers order by them).
    answer = MessageQueued(
        id=message_id,
        sender_id=caller,
        receiver_id=data.receiver_id,
        created_at=datetime.now(UTC),
    )
    message = QueuedMessage(
        id=answer.id,
        content=data.content,
        sender_id=caller,
        receiver_id=data.receiver_id,
        created_at=answer.created_at.isoformat(),
    )
    send = Send(message)
    if record_key is not None:
        done = {
            "fingerprint": fingerprint,
            "state": "done",
            "answer": answer.model_dump(mode="json"),
        }
        send.idempotency = (record_key, json.dumps(done), outbox.idempotency_ttl)
    try:
        await outbox.batcher.submit(send)
    except Exception:
        if record_key is not None:
            await outbox.redis.delete(record_key)
        raise
    return answer, False


def _idempotency_record_key(caller: int, key: str) -> str:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        problem = f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        raise InvalidInput(
            f"Idempotency-Key: {problem}",
            errors=[FieldError(field="Idempotency-Key", message=problem)],
        )
    return f"anonchat:idem:{caller}:{hashlib.sha256(key.encode()).hexdigest()}"


async def _replay(redis: Redis, record_key: str, fingerprint: str) -> MessageQueued | None:
    """The first answer given for this key, or None when the key is new."""
    raw = await redis.get(record_key)
    if raw is None:
        return None
    record = json.loads(raw)
    if record["fingerprint"] != fingerprint:
        raise Conflict("this Idempotency-Key was already used for a different message")
    if record["state"] != "done":
        raise Conflict(
            "a send with this Idempotency-Key is still in progress, retry shortly",
            headers={"Retry-After": "1"},
        )
    return MessageQueued.model_validate(record["answer"])


# A page is read as plain rows through Core, with statements built once: py-spy showed
# ORM loading, and building the statement on every call, costing more than the query.
_LISTED = (
    Message.id,
    Message.seq,
    Message.content,
    Message.sender_id,
    Message.receiver_id,
    Message.created_at,
)
Listed = Row[int, int, str, int, int, datetime]
_CALLER = bindparam("caller", type_=BigInteger)
_AFTER = bindparam("after", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
_CONVERSATION = (
    select(*_LISTED)
    .where(
        func.least(Message.sender_id, Message.receiver_id) == bindparam("low"),
        func.greatest(Message.sender_id, Message.receiver_id) == bindparam("high"),
        Message.seq > _AFTER,
    )
    .order_by(Message.seq)
    .limit(_LIMIT)
)
_SENT = (
    select(Message.id)
    .where(Message.sender_id == _CALLER, Message.seq > _AFTER)
    .order_by(Message.seq)
    .limit(_LIMIT)
)
_RECEIVED = (
    select(Message.id)
    .where(Message.receiver_id == _CALLER, Message.sender_id != _CALLER, Message.seq > _AFTER)
    .order_by(Message.seq)
    .limit(_LIMIT)
)
_MINE = union_all(_SENT, _RECEIVED).subquery()
_ALL_MINE = (
    select(*_LISTED).join(_MINE, Message.id == _MINE.c.id).order_by(Message.seq).limit(_LIMIT)
)


async def list_messages(
    *, connection: AsyncConnection, caller: int, with_user: int | None, after_seq: int, limit: int
) -> Sequence[Listed]:
    """The caller's stored messages (or one conversation), in storage order after ``after_seq``."""
    if with_user is not None:
        low, high = sorted((caller, with_user))
        parameters = {"low": low, "high": high, "after": after_seq, "limit": limit}
        return (await connection.execute(_CONVERSATION, parameters)).all()
    parameters = {"caller": caller, "after": after_seq, "limit": limit}
    return (await connection.execute(_ALL_MINE, parameters)).all()


async def message_status(
    *, session: AsyncSession, redis: Redis, caller: int, message_id: int
) -> tuple[Message | PendingEntry, str]:
    """A message the caller sent or received and whether it is queued, persisted or failed.

    The pending entry is read before the database: the worker removes it only after its
    commit, so a message missing from both was never accepted. Anyone but its sender and
    receiver is told it does not exist.
    """
    raw_entry = await redis.hget(PENDING_KEY, str(message_id))
    stored = await session.get(Message, message_id)
    if stored is not None and caller in (stored.sender_id, stored.receiver_id):
        return stored, "persisted"
    if stored is not None or raw_entry is None:
        raise NotFound("no such message")
    entry = parse_pending_entry(raw_entry)
    if caller not in (entry["sender_id"], entry["receiver_id"]):
        raise NotFound("no such message")
    job_status = await redis.hget(Job.key_for(entry["job_id"]), "status")
    failed = job_status == JobStatus.FAILED.value
    return entry, "failed" if failed else "queued"
