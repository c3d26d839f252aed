"""Taking messages back: one message by its sender, or everything an erased account sent.

A deleted message is gone for both parties, from Postgres and, while it is queued, from
Redis: its pending entry is removed under the cursor lock, and a worker stores a message
only if its entry is still there once it holds that lock, so a message deleted while
queued is never stored. Both parties' streams are told (``event: deleted``), but a
receiver who blocked the sender, who never saw the message, is told nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import BigInteger, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.errors import Forbidden, NotFound
from common.schemas import MessageDeleted
from message_service import events
from message_service.events import Told
from message_service.models import Block, Event, Message, Preferences, ReadMark
from message_service.persistence.queued import (
    ERASED_CHANNEL,
    PENDING_KEY,
    PendingEntry,
    batch_key,
    blocks_key,
    conversation_key,
    idempotency_record_key,
    parse_pending_entry,
    send_rate_key,
)
from message_service.reading import blocks

_MESSAGE = bindparam("id", type_=BigInteger)
_DELETE_STORED = (
    delete(Message)
    .where(Message.id == _MESSAGE, Message.sender_id == bindparam("sender", type_=BigInteger))
    .returning(Message.receiver_id, Message.hidden)
)


def _told_deleted(message_id: int, sender: int, receiver: int, hidden: bool) -> list[Told]:
    data = MessageDeleted(id=message_id, sender_id=sender, receiver_id=receiver)
    audience = [sender] if hidden or sender == receiver else [sender, receiver]
    return [Told(user, "deleted", data, message_id=message_id) for user in audience]


async def delete_message(
    *, engine: AsyncEngine, redis: Redis, caller: int, message_id: int
) -> None:
    """Delete a message of the caller's (stored or queued); 403 for its receiver, 404 for
    anyone else or a message that does not exist."""
    async with engine.begin() as connection:
        await events.lock_cursors(connection)
        row = (
            await connection.execute(_DELETE_STORED, {"id": message_id, "sender": caller})
        ).first()
        if row is not None:
            told = _told_deleted(message_id, caller, row.receiver_id, row.hidden)
        else:
            entry = await _pending(redis, message_id)
            if entry is None or entry["sender_id"] != caller:
                await _refuse(connection, redis, caller, message_id, entry)
            assert entry is not None
            await _unqueue(redis, [entry])
            hidden = await blocks(
                connection,
                blocker=entry["receiver_id"],
                blocked=caller,
                at=datetime.fromisoformat(entry["created_at"]),
            )
            told = _told_deleted(message_id, caller, entry["receiver_id"], hidden)
        cursors = await events.tell(connection, told)
    await events.announce(redis, cursors)


async def _pending(redis: Redis, message_id: int) -> PendingEntry | None:
    raw = await redis.hget(PENDING_KEY, str(message_id))
    return parse_pending_entry(raw) if raw is not None else None


async def _refuse(
    connection: AsyncConnection,
    redis: Redis,
    caller: int,
    message_id: int,
    entry: PendingEntry | None,
) -> None:
    """Why the caller may not delete it: 403 if it is theirs to see, else 404."""
    receiver_of: tuple[int, bool, datetime] | None = None
    if entry is not None:
        receiver_of = (entry["receiver_id"], False, datetime.fromisoformat(entry["created_at"]))
    else:
        row = (
            await connection.execute(
                select(Message.receiver_id, Message.hidden, Message.created_at).where(
                    Message.id == _MESSAGE
                ),
                {"id": message_id},
            )
        ).first()
        if row is not None:
            receiver_of = (row.receiver_id, row.hidden, row.created_at)
    if receiver_of is not None and receiver_of[0] == caller and not receiver_of[1]:
        raise Forbidden("only its sender can delete a message")
    raise NotFound("no such message")


async def _unqueue(redis: Redis, entries: list[PendingEntry]) -> None:
    """Remove queued messages from everything that would store or show them."""
    async with redis.pipeline(transaction=True) as pipe:
        for entry in entries:
            member = str(entry["id"])
            pipe.hdel(PENDING_KEY, member)
            pipe.zrem(conversation_key(entry["sender_id"], entry["receiver_id"]), member)
            pipe.lrem(batch_key(entry["job_id"]), 0, member)
            key_hash = entry.get("idempotency_key")
            if key_hash is not None:
                pipe.delete(idempotency_record_key(entry["sender_id"], key_hash))
        await pipe.execute()


# An account's messages are deleted this many at a time.
ERASE_BATCH = 1000


async def erase_user(*, engine: AsyncEngine, redis: Redis, user_id: int) -> None:
    """Everything of an erased account: the messages it sent (stored and queued, their
    receivers told), its blocks, preferences, read marks, the events it was told, the
    read receipts it gave, and its keys in Redis. Messages it received stay, in their
    senders' histories. Safe to run again (user_service retries until it succeeds)."""
    async with engine.begin() as connection:
        await events.lock_cursors(connection)
        queued = [e async for e in _queued_from(redis, user_id)]
        await _unqueue(redis, queued)
        told = [t for e in queued for t in _told_deleted(e["id"], user_id, e["receiver_id"], False)]
        while True:
            rows = (
                await connection.execute(
                    delete(Message)
                    .where(
                        Message.id.in_(
                            select(Message.id)
                            .where(Message.sender_id == user_id)
                            .limit(ERASE_BATCH)
                        )
                    )
                    .returning(Message.id, Message.receiver_id, Message.hidden)
                )
            ).all()
            told += [t for r in rows for t in _told_deleted(r.id, user_id, r.receiver_id, r.hidden)]
            if len(rows) < ERASE_BATCH:
                break
        await connection.execute(
            update(Message).where(Message.receiver_id == user_id).values(read_at=None)
        )
        await connection.execute(
            delete(Event).where(
                (Event.user_id == user_id) | ((Event.kind == "read") & (Event.other_id == user_id))
            )
        )
        blockers = (
            await connection.execute(
                delete(Block)
                .where((Block.blocker_id == user_id) | (Block.blocked_id == user_id))
                .returning(Block.blocker_id)
            )
        ).scalars()
        await connection.execute(delete(Preferences).where(Preferences.user_id == user_id))
        await connection.execute(
            delete(ReadMark).where((ReadMark.reader_id == user_id) | (ReadMark.other_id == user_id))
        )
        # The deleted events go to the receivers only: nobody is left to tell the sender.
        cursors = await events.tell(connection, [t for t in told if t.user_id != user_id])
        await _forget_in_redis(redis, user_id, set(blockers) - {user_id})
    await events.announce(redis, cursors)
    await redis.publish(ERASED_CHANNEL, str(user_id))


async def _queued_from(redis: Redis, user_id: int) -> AsyncIterator[PendingEntry]:
    async for _, raw in redis.hscan_iter(PENDING_KEY):
        entry = parse_pending_entry(raw)
        if entry["sender_id"] == user_id:
            yield entry


async def _forget_in_redis(redis: Redis, user_id: int, blockers: set[int]) -> None:
    records = [key async for key in redis.scan_iter(match=idempotency_record_key(user_id, "*"))]
    async with redis.pipeline(transaction=False) as pipe:
        if records:
            pipe.delete(*records)
        pipe.delete(send_rate_key(user_id), blocks_key(user_id))
        for blocker in blockers:
            pipe.srem(blocks_key(blocker), str(user_id))
        await pipe.execute()
