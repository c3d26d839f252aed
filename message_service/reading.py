"""Reading messages: pages of stored messages, and one message wherever it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import (
    BigInteger,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from common.errors import NotFound
from message_service.models import Block, Message, Preferences
from message_service.persistence.queued import PENDING_KEY, PendingEntry, parse_pending_entry
from message_service.persistence.rq_layout import FAILED, STATUS_FIELD, job_key

# A page is read as plain rows through Core, with statements built once: py-spy showed
# ORM loading, and building the statement on every call, costing more than the query.
_CALLER = bindparam("caller", type_=BigInteger)
# A caller who sends no read receipts sees none (evaluated once per statement).
_SEES_RECEIPTS = func.coalesce(
    select(Preferences.read_receipts).where(Preferences.user_id == _CALLER).scalar_subquery(),
    false(),
)
_LISTED = (
    Message.id,
    Message.seq.label("cursor"),
    Message.content,
    Message.sender_id,
    Message.receiver_id,
    Message.created_at,
    case((_SEES_RECEIPTS, Message.read_at)).label("read_at"),
)
Listed = Row[int, int, str, int, int, datetime, datetime | None]
# A message from someone the caller blocked is not the caller's to see.
_VISIBLE = ~and_(Message.receiver_id == _CALLER, Message.hidden)
_AFTER = bindparam("after", type_=BigInteger)
_BEFORE = bindparam("before", type_=BigInteger)
_LIMIT = bindparam("limit", type_=Integer)
_IN_CONVERSATION = (
    func.least(Message.sender_id, Message.receiver_id) == bindparam("low"),
    func.greatest(Message.sender_id, Message.receiver_id) == bindparam("high"),
    _VISIBLE,
)
_SENT = Message.sender_id == _CALLER
_RECEIVED = and_(Message.receiver_id == _CALLER, Message.sender_id != _CALLER, ~Message.hidden)


@dataclass(frozen=True)
class _Pages:
    """The statements of one reading direction: after a cursor, or before one (newest
    first, reversed by the caller)."""

    conversation: Select[Any]
    all_mine: Select[Any]


def _pages(*, newest_first: bool) -> _Pages:
    after = Message.seq > _AFTER
    bound = and_(Message.seq < _BEFORE, after) if newest_first else after
    order = Message.seq.desc() if newest_first else Message.seq
    # Each side of the caller's messages is an index range scan of its own.
    mine = union_all(
        *(
            select(Message.id).where(side, bound).order_by(order).limit(_LIMIT)
            for side in (_SENT, _RECEIVED)
        )
    ).subquery()
    return _Pages(
        conversation=select(*_LISTED).where(*_IN_CONVERSATION, bound).order_by(order).limit(_LIMIT),
        all_mine=select(*_LISTED).join(mine, Message.id == mine.c.id).order_by(order).limit(_LIMIT),
    )


_FORWARD, _BACKWARD = _pages(newest_first=False), _pages(newest_first=True)
_ONE = select(*_LISTED).where(
    Message.id == bindparam("id", type_=BigInteger),
    or_(Message.sender_id == _CALLER, and_(Message.receiver_id == _CALLER, ~Message.hidden)),
)


async def list_messages(
    *,
    connection: AsyncConnection,
    caller: int,
    with_user: int | None,
    after: int,
    before: int | None,
    limit: int,
) -> Sequence[Listed]:
    """The caller's stored messages (or one conversation) in storage order: the first
    ``limit`` after the cursor ``after``, or with ``before`` the last ``limit`` before it
    (and still after ``after``)."""
    pages = _FORWARD if before is None else _BACKWARD
    parameters = {"caller": caller, "after": after, "before": before, "limit": limit}
    if with_user is not None:
        low, high = sorted((caller, with_user))
        rows = await connection.execute(
            pages.conversation, {**parameters, "low": low, "high": high}
        )
    else:
        rows = await connection.execute(pages.all_mine, parameters)
    found: Sequence[Listed] = rows.all()
    return found if before is None else found[::-1]


async def message_status(
    *, connection: AsyncConnection, redis: Redis, caller: int, message_id: int
) -> tuple[Listed | PendingEntry, str]:
    """A message the caller sent or received and whether it is queued, persisted or failed.

    The pending entry is read before the database: the worker removes it only after its
    commit, so a message missing from both was never accepted (or is deleted). Anyone but
    its sender and receiver is told it does not exist.
    """
    raw_entry = await redis.hget(PENDING_KEY, str(message_id))
    stored = (await connection.execute(_ONE, {"id": message_id, "caller": caller})).first()
    if stored is not None:
        return stored, "persisted"
    if raw_entry is None:
        raise NotFound("no such message")
    entry = parse_pending_entry(raw_entry)
    if caller != entry["sender_id"] and (
        caller != entry["receiver_id"]
        or await blocks(
            connection,
            blocker=caller,
            blocked=entry["sender_id"],
            at=datetime.fromisoformat(entry["created_at"]),
        )
    ):
        raise NotFound("no such message")
    job_status = await redis.hget(job_key(entry["job_id"]), STATUS_FIELD)
    return entry, "failed" if job_status == FAILED else "queued"


_BLOCKS = select(Block.blocker_id).where(
    Block.blocker_id == bindparam("blocker", type_=BigInteger),
    Block.blocked_id == bindparam("blocked", type_=BigInteger),
    Block.created_at <= bindparam("at"),
)


async def blocks(connection: AsyncConnection, *, blocker: int, blocked: int, at: datetime) -> bool:
    """Whether ``blocker`` had blocked ``blocked`` by ``at`` (so that what ``blocked``
    sent then is not ``blocker``'s to see)."""
    parameters = {"blocker": blocker, "blocked": blocked, "at": at}
    return (await connection.execute(_BLOCKS, parameters)).first() is not None
