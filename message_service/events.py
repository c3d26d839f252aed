"""Events that message_service itself writes to users' streams (a message deleted, a
conversation read), in the transaction that makes them true, under the cursor lock, and
announced once committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from message_service.models import Event
from message_service.persistence.queued import STORED_CHANNEL, announcement
from message_service.persistence.store import CURSOR_LOCK


@dataclass(frozen=True)
class Told:
    """An event for one user."""

    user_id: int
    kind: str
    data: BaseModel
    message_id: int | None = None
    other_id: int | None = None


async def lock_cursors(connection: AsyncConnection) -> None:
    """Take the cursor lock for the rest of the transaction (events take cursors)."""
    await connection.execute(CURSOR_LOCK)


async def tell(connection: AsyncConnection, events: Sequence[Told]) -> list[int]:
    """Record ``events`` (the transaction holds the cursor lock); their cursors. An event
    about a message is told once to each user (a repeat is skipped)."""
    if not events:
        return []
    rows = await connection.execute(
        insert(Event)
        .values(
            [
                {
                    "user_id": e.user_id,
                    "kind": e.kind,
                    "message_id": e.message_id,
                    "other_id": e.other_id,
                    "data": e.data.model_dump_json(),
                }
                for e in events
            ]
        )
        .on_conflict_do_nothing()
        .returning(Event.seq)
    )
    return [row.seq for row in rows]


async def announce(redis: Redis, cursors: Sequence[int]) -> None:
    """Wake every replica's stream hub for what was just committed."""
    if cursors:
        await redis.publish(STORED_CHANNEL, announcement(max(cursors), [], []))
