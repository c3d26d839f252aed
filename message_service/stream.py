"""The event stream: every message a user sent or received as it is stored, and the events
told to them (a message that failed), in cursor order, as Server-Sent Events, resumable
from any cursor.

Postgres is the source of truth. One :class:`Hub` per process follows everything stored
after the last cursor it has seen and hands each event to the open streams of the users
it concerns. A Redis announcement of a stored batch carries the batch's messages: when
they continue from the hub's cursor with no cursor missing, the hub hands them on as
they are. Otherwise (pub/sub is at most once, and announcements from several workers
may arrive out of order, or carry only part of what they announce) it reads everything
after its cursor from Postgres, with one query however many streams are open; it also
reads every ``poll_seconds`` without an announcement, in case one was lost. Because the
cursor lock makes commits visible in cursor order, reading "everything after cursor N"
never skips a row that another worker committed but has not announced yet; and an
announced message is handed on only once every cursor below it has been. While no
stream is open, the hub only moves its cursor on (to the highest announced, or to the
latest stored when it must ask Postgres): what was stored meanwhile concerns no one here.

A stream first reads what it missed (everything after the client's cursor) from Postgres
itself, while the hub already buffers what arrives meanwhile; rows at or below the
cursor it has sent are dropped, so nothing is sent twice. A stream whose client stops
reading fills its bounded buffer and is closed; its client resumes from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import BigInteger, Integer, Row, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.errors import TooManyRequests
from common.metrics import dependency_error
from common.schemas import MessageRead
from common.sse import comment, reauthenticate
from message_service.persistence.queued import ERASED_CHANNEL, STORED_CHANNEL, AnnouncedMessage

log = logging.getLogger(__name__)
# How often the hub checks deadlines and keep-alives.
TICK_SECONDS = 1.0
# After a lost Redis subscription, the hub subscribes again after this.
RESUBSCRIBE_SECONDS = 1.0
_MESSAGE = TypeAdapter(MessageRead)

# Rows after a cursor: messages (of everyone, or of one user) and events, one shape.
_COLUMNS = (
    "seq, '{kind}' AS kind, sender_id, receiver_id, id, content, created_at, NULL AS data, hidden"
)
_EVENT_COLUMNS = "seq, kind, user_id, NULL, message_id, NULL, created_at, data, false"
_EVERYONE = text(
    f"""
    SELECT {_COLUMNS.format(kind="message")} FROM messages WHERE seq > :after
    UNION ALL
    SELECT {_EVENT_COLUMNS} FROM events WHERE seq > :after
    ORDER BY seq LIMIT :limit
    """
).bindparams(bindparam("after", type_=BigInteger), bindparam("limit", type_=Integer))
_ONE_USER = text(
    f"""
    (SELECT {_COLUMNS.format(kind="message")} FROM messages
     WHERE sender_id = :user AND seq > :after ORDER BY seq LIMIT :limit)
    UNION ALL
    (SELECT {_COLUMNS.format(kind="message")} FROM messages
     WHERE receiver_id = :user AND sender_id <> :user AND NOT hidden AND seq > :after
     ORDER BY seq LIMIT :limit)
    UNION ALL
    (SELECT {_EVENT_COLUMNS} FROM events WHERE user_id = :user AND seq > :after
     ORDER BY seq LIMIT :limit)
    ORDER BY seq LIMIT :limit
    """
).bindparams(
    bindparam("user", type_=BigInteger),
    bindparam("after", type_=BigInteger),
    bindparam("limit", type_=Integer),
)
_LATEST = text("SELECT greatest((SELECT max(seq) FROM messages), (SELECT max(seq) FROM events), 0)")


@dataclass(frozen=True)
class Told:
    """One event of the stream, formatted once for every stream it goes to."""

    cursor: int
    audience: tuple[int, ...]
    chunk: bytes


def _event(cursor: int, kind: str, audience: tuple[int, ...], body: str) -> Told:
    return Told(cursor, audience, f"id: {cursor}\nevent: {kind}\ndata: {body}\n\n".encode())


def _message(message: MessageRead, *, hidden: bool) -> Told:
    """A message's event: to its sender and receiver (not to a receiver who blocked its
    sender)."""
    audience = (message.sender_id,) if hidden else tuple({message.sender_id, message.receiver_id})
    return _event(message.cursor, "message", audience, _MESSAGE.dump_json(message).decode())


def _told(row: Row[Any]) -> Told:
    """An event of the stream from a row of ``_EVERYONE`` or ``_ONE_USER``: a message, or
    an event for the user it names (``sender_id``)."""
    if row.kind == "message":
        message = MessageRead(
            id=row.id,
            cursor=row.seq,
            content=row.content,
            sender_id=row.sender_id,
            receiver_id=row.receiver_id,
            created_at=row.created_at,
        )
        return _message(message, hidden=row.hidden)
    return _event(row.seq, row.kind, (row.sender_id,), row.data)


@dataclass(frozen=True)
class _Announced:
    """An announcement: the highest cursor it announces, and the messages it carries, in
    cursor order (made into events only when the hub offers them)."""

    up_to: int
    messages: list[AnnouncedMessage]


def _announced(data: bytes) -> _Announced | None:
    """The announcement ``data`` holds; None if it cannot be read (Postgres has to be
    asked what it announces)."""
    try:
        body = json.loads(data)
        messages: list[AnnouncedMessage] = body["messages"]
        if not all(isinstance(m, dict) and isinstance(m.get("cursor"), int) for m in messages):
            raise ValueError("a message without a cursor")
        return _Announced(int(body["up_to"]), messages)
    except (ValueError, TypeError, KeyError):
        log.warning("an announcement the stream hub cannot read: %r", data[:200])
        return None


def _carried(message: AnnouncedMessage) -> Told | None:
    """The event of a message an announcement carries; None if it cannot be read."""
    try:
        return _message(MessageRead.model_validate(message), hidden=message["hidden"])
    except (KeyError, ValidationError):
        log.warning("an announced message the stream hub cannot read: %r", message)
        return None


@dataclass(eq=False, slots=True)
class Stream:
    """One client's stream: what it has been sent, and what waits to be sent. Thousands
    are open at once, so it holds no more than it must (no ``asyncio.Event``, whose
    waiters' deque alone is most of a kilobyte)."""

    user_id: int
    cursor: int
    until: float
    limit: int
    waiting: list[Told] = field(default_factory=list)
    overflowed: bool = False
    keep_alive: bool = False
    expired: bool = False
    stopped: bool = False
    last_sent: float = field(default_factory=time.monotonic)
    _woken: asyncio.Future[None] | None = None

    def offer(self, told: Told) -> None:
        """Queue ``told`` unless it was sent already; past the limit, give up."""
        if told.cursor <= self.cursor:
            return
        if len(self.waiting) >= self.limit:
            self.overflowed = True
        else:
            self.waiting.append(told)
        self.wake()

    def stop(self) -> None:
        """End the stream (its client has gone, or this server is stopping)."""
        self.stopped = True
        self.wake()

    def wake(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

    async def woken(self) -> None:
        """Until :meth:`wake` is called."""
        self._woken = asyncio.get_running_loop().create_future()
        try:
            await self._woken
        finally:
            self._woken = None


class Hub:
    """This process's one reader of what is stored, and the open streams it feeds."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        poll_seconds: float,
        keep_alive_seconds: float,
        buffer_limit: int,
        per_user: int,
        on_erased: Callable[[int], None] = lambda user_id: None,
        page: int = 500,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.poll_seconds = poll_seconds
        self.keep_alive_seconds = keep_alive_seconds
        self.buffer_limit = buffer_limit
        self.per_user = per_user
        self.on_erased = on_erased
        self.page = page
        self.position = 0
        # Streams opened so far: a change says one opened during an await.
        self.opened = 0
        self.streams: dict[int, set[Stream]] = {}
        # Announcements not handled yet; whether Postgres must be read whatever they say
        # (after subscribing, after a poll's wait, after a failed read).
        self._announced: list[_Announced] = []
        self._must_read = True
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start reading from the latest cursor (streams read what came before)."""
        with contextlib.suppress(SQLAlchemyError):
            self.position = await self._latest()
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._read()),
            asyncio.create_task(self._tick()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for streams in self.streams.values():
            for stream in streams:
                stream.expired = True
                stream.wake()

    def open(self, user_id: int, cursor: int, until: float) -> Stream:
        """A stream of ``user_id``'s events after ``cursor``, ending at ``until`` (epoch
        seconds); buffered by the hub from now on."""
        mine = self.streams.setdefault(user_id, set())
        if len(mine) >= self.per_user:
            raise TooManyRequests(
                f"at most {self.per_user} open streams per user", headers={"Retry-After": "5"}
            )
        stream = Stream(user_id, cursor, until, self.buffer_limit)
        mine.add(stream)
        self.opened += 1
        return stream

    def close(self, stream: Stream) -> None:
        mine = self.streams.get(stream.user_id)
        if mine is not None:
            mine.discard(stream)
            if not mine:
                del self.streams[stream.user_id]

    async def missed(self, stream: Stream) -> list[Told]:
        """A page of what ``stream`` has not been sent, read from Postgres."""
        parameters = {"user": stream.user_id, "after": stream.cursor, "limit": self.page}
        async with self.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as c:
            rows = (await c.execute(_ONE_USER, parameters)).all()
        return [_told(row) for row in rows]

    async def _listen(self) -> None:
        """Keep each announcement of stored messages for the reader and wake it, and pass
        on each erased account (this process's one subscription); subscribe again after
        a Redis loss."""
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(STORED_CHANNEL, ERASED_CHANNEL)
                    # Anything stored while unsubscribed.
                    self._must_read = True
                    self._wake.set()
                    async for message in pubsub.listen():
                        if message["channel"] == ERASED_CHANNEL:
                            self.on_erased(int(message["data"]))
                        else:
                            announced = _announced(message["data"])
                            if announced is None:
                                self._must_read = True
                            else:
                                self._announced.append(announced)
                            self._wake.set()
            except (RedisError, OSError) as exc:
                dependency_error("redis")
                log.warning("stream announcements lost (%s); the hub polls meanwhile", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _read(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: wait_for can swallow the task's cancellation
            # when the wait ends at the same moment, and the hub would never stop.
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                self._must_read = True
            self._wake.clear()
            try:
                await self._read_new()
            except SQLAlchemyError as exc:
                self._must_read = True
                log.warning("the stream hub cannot read from the database: %s", exc)

    async def _latest(self) -> int:
        async with self.engine.connect() as connection:
            return int((await connection.execute(_LATEST)).scalar_one())

    async def _read_new(self) -> None:
        """Everything stored after the hub's cursor, to the streams it concerns: from the
        announcements if they hold all of it, else from Postgres. With no stream open,
        only move the cursor on, to the highest announced (every cursor below it is
        committed), or to the latest one if Postgres must be read. A stream that opens
        reads from Postgres what it missed up to then, so the hub need only offer it
        what comes after, unless it opened while the latest cursor was being read (then
        the hub reads on from where it was)."""
        announced, self._announced = self._announced, []
        must_read, self._must_read = self._must_read, False
        if not self.streams:
            if not must_read:
                self.position = max([self.position, *(a.up_to for a in announced)])
                return
            opened = self.opened
            latest = await self._latest()
            if self.opened == opened:
                self.position = max(self.position, latest)
                return
        elif not must_read and self._offer_announced(announced):
            return
        while True:
            parameters = {"after": self.position, "limit": self.page}
            async with self.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as c:
                rows = (await c.execute(_EVERYONE, parameters)).all()
            for row in rows:
                self._offer(_told(row))
            if len(rows) < self.page:
                return

    def _offer_announced(self, announced: list[_Announced]) -> bool:
        """Offer what the announcements carry, in cursor order, as far as no cursor is
        missing; whether that was everything they announce (else Postgres has the rest)."""
        for announcement in sorted(announced, key=lambda a: a.up_to):
            for message in announcement.messages:
                if message["cursor"] <= self.position:
                    continue
                told = _carried(message) if message["cursor"] == self.position + 1 else None
                if told is None:
                    return False
                self._offer(told)
            if announcement.up_to > self.position:
                return False
        return True

    def _offer(self, told: Told) -> None:
        for user_id in told.audience:
            for stream in self.streams.get(user_id, ()):
                stream.offer(told)
        self.position = told.cursor

    async def _tick(self) -> None:
        """Keep idle streams alive and end those whose access ran out."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now, monotonic = time.time(), time.monotonic()
            for streams in self.streams.values():
                for stream in streams:
                    if now >= stream.until:
                        stream.expired = True
                    elif monotonic - stream.last_sent >= self.keep_alive_seconds:
                        stream.keep_alive = True
                    else:
                        continue
                    stream.wake()


async def events(hub: Hub, stream: Stream, first: list[Told]) -> AsyncGenerator[bytes, None]:
    """The body of a stream: what it missed (``first`` is the first page of it, read
    before the answer began), then what is stored as it is, until its access ends."""
    try:
        yield b"retry: 1000\n\n"
        missed = first
        while True:
            for told in missed:
                yield told.chunk
                stream.cursor = told.cursor
            if len(missed) < hub.page:
                break
            missed = await hub.missed(stream)
        stream.last_sent = time.monotonic()
        while not stream.stopped:
            if not stream.overflowed:
                waiting, stream.waiting = stream.waiting, []
                for told in waiting:
                    if told.cursor > stream.cursor:
                        yield told.chunk
                        stream.cursor = told.cursor
                        stream.last_sent = time.monotonic()
            if stream.overflowed:
                log.info("closed a stream of user %s that fell behind", stream.user_id)
                return
            if stream.expired:
                yield reauthenticate("the access token expired: refresh it and reconnect")
                return
            if stream.keep_alive:
                stream.keep_alive = False
                stream.last_sent = time.monotonic()
                yield comment("keep-alive")
            if not stream.waiting and not stream.stopped:
                await stream.woken()
    finally:
        hub.close(stream)
