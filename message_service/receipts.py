"""Read receipts, off by default and reciprocal: a reader who sends receipts records when
it read each message (``read_at``) and tells the sender (``event: read``); a user sees
receipts only while it sends them itself. Whether or not receipts are on, a reader's read
mark (how far it has read each conversation) is kept for its own unread counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import BigInteger, Integer, Row, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.schemas import MessagesRead
from message_service import events
from message_service.events import Told
from message_service.models import Message, Preferences, ReadMark


async def sends_receipts(connection: AsyncConnection, user_id: int) -> bool:
    """Whether ``user_id`` has read receipts on."""
    found = await connection.execute(
        select(Preferences.read_receipts).where(Preferences.user_id == user_id)
    )
    return bool(found.scalar_one_or_none())


async def set_receipts(*, engine: AsyncEngine, user_id: int, on: bool) -> None:
    """Turn read receipts on or off for ``user_id``."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(Preferences)
            .values(user_id=user_id, read_receipts=on)
            .on_conflict_do_update(index_elements=[Preferences.user_id], set_={"read_receipts": on})
        )


async def mark_read(
    *, engine: AsyncEngine, redis: Redis, reader: int, other: int, up_to: int
) -> None:
    """``reader`` has read its conversation with ``other`` up to the cursor ``up_to``."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(ReadMark)
            .values(reader_id=reader, other_id=other, up_to=up_to)
            .on_conflict_do_update(
                index_elements=[ReadMark.reader_id, ReadMark.other_id],
                set_={"up_to": func.greatest(ReadMark.up_to, up_to)},
            )
        )
        cursors: list[int] = []
        if other != reader and await sends_receipts(connection, reader):
            await events.lock_cursors(connection)
            now = datetime.now(UTC)
            read = (
                (
                    await connection.execute(
                        update(Message)
                        .where(
                            Message.sender_id == other,
                            Message.receiver_id == reader,
                            ~Message.hidden,
                            Message.seq <= up_to,
                            Message.read_at.is_(None),
                        )
                        .values(read_at=now)
                        .returning(Message.seq)
                    )
                )
                .scalars()
                .all()
            )
            if read and await sends_receipts(connection, other):
                data = MessagesRead(reader_id=reader, up_to=max(read), read_at=now)
                told = Told(other, "read", data, other_id=reader)
                cursors = await events.tell(connection, [told])
    await events.announce(redis, cursors)


# Each conversation of a user: the other user, its latest cursor, and how many messages
# the user received there after its read mark.
_CONVERSATIONS = text(
    """
    SELECT other AS user_id, max(seq) AS last_cursor, count(*) FILTER (WHERE unread) AS unread
    FROM (
        SELECT receiver_id AS other, seq, false AS unread
        FROM messages WHERE sender_id = :me
        UNION ALL
        SELECT m.sender_id, m.seq, m.seq > coalesce(r.up_to, 0)
        FROM messages AS m
        LEFT JOIN read_marks AS r ON r.reader_id = :me AND r.other_id = m.sender_id
        WHERE m.receiver_id = :me AND m.sender_id <> :me AND NOT m.hidden
    ) AS mine
    GROUP BY other
    ORDER BY max(seq) DESC
    LIMIT :limit
    """
).bindparams(bindparam("me", type_=BigInteger), bindparam("limit", type_=Integer))


async def conversations(
    *, connection: AsyncConnection, user_id: int, limit: int
) -> Sequence[Row[Any]]:
    """The user's conversations, the latest first, with their unread counts."""
    return (await connection.execute(_CONVERSATIONS, {"me": user_id, "limit": limit})).all()
