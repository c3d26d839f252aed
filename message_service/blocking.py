"""Blocking: from the block on, what the blocked user sends never reaches the blocker
(stored hidden from it: not in its history, its stream or /messages/{id}), while the
blocked sender sees nothing different. The blocker cannot send to whom it blocks (409).

Postgres holds the blocks; the set of whom each user blocks is mirrored in Redis for the
queueing script, written before the commit, so that a failed write leaves no block in
one without the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import Row, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from common.errors import Forbidden, NotFound
from common.users import KnownUsers
from message_service.models import Block
from message_service.persistence.queued import blocks_key


async def block(
    *, engine: AsyncEngine, redis: Redis, users: KnownUsers, blocker: int, blocked: int
) -> None:
    """``blocker`` blocks ``blocked`` (again: nothing changes, the first block stands)."""
    if blocker == blocked:
        raise Forbidden("you cannot block yourself")
    if not await users.exists(blocked):
        raise NotFound("no such user")
    async with engine.begin() as connection:
        await connection.execute(
            insert(Block).values(blocker_id=blocker, blocked_id=blocked).on_conflict_do_nothing()
        )
        await redis.sadd(blocks_key(blocker), str(blocked))


async def unblock(*, engine: AsyncEngine, redis: Redis, blocker: int, blocked: int) -> None:
    """``blocker`` no longer blocks ``blocked``: what it sends from now on arrives (what it
    sent meanwhile stays hidden)."""
    async with engine.begin() as connection:
        await connection.execute(
            delete(Block).where(Block.blocker_id == blocker, Block.blocked_id == blocked)
        )
        await redis.srem(blocks_key(blocker), str(blocked))


async def blocked_by(*, engine: AsyncEngine, blocker: int) -> Sequence[Row[int, datetime]]:
    """Whom ``blocker`` blocks, and since when, oldest first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Block.blocked_id.label("user_id"), Block.created_at.label("blocked_at"))
            .where(Block.blocker_id == blocker)
            .order_by(Block.created_at)
        )
        return rows.all()
