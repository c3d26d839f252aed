"""The stream hub of message_service in process, fed by an in-process RQ worker, with
real Postgres and Redis: what it hands on from announcements, and when it reads
Postgres instead."""

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis.asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from message_service.config import Settings
from message_service.stream import Hub, Stream
from message_service.tests.service import as_user, send

DEADLINE_SECONDS = 10.0


class CountedHub:
    """A hub of its own, and the statements it has sent Postgres."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.statements: list[str] = []

    async def settled(self) -> None:
        """Until the hub has read what was stored before it subscribed (everything after
        its cursor if a stream is open, else the latest cursor again): its second
        statement, after the latest cursor it started from."""
        await until(lambda: len(self.statements) == 2)
        self.statements.clear()


@pytest.fixture
async def counted(message_settings: Settings) -> AsyncIterator[CountedHub]:
    engine = create_async_engine(message_settings.database_url)
    client = redis.asyncio.Redis.from_url(message_settings.redis_url)
    hub = Hub(
        engine=engine,
        redis=client,
        poll_seconds=60,
        keep_alive_seconds=60,
        buffer_limit=100,
        per_user=10,
    )
    counted = CountedHub(hub)
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda *args: counted.statements.append(args[2]),
    )
    await hub.start()
    try:
        yield counted
    finally:
        await hub.stop()
        await engine.dispose()
        await client.aclose()


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


async def stored(
    client: httpx.AsyncClient, drain: Callable[[], None], sender: int, receiver: int, content: str
) -> int:
    answer = await send(client, sender, receiver, content)
    assert answer.status_code == 202, answer.text
    drain()
    return int(answer.json()["id"])


def messages(stream: Stream) -> list[dict[str, object]]:
    """The messages waiting on ``stream``, as its client would read them."""
    return [json.loads(t.chunk.split(b"data: ", 1)[1]) for t in stream.waiting]


async def test_announced_messages_are_handed_on_as_get_messages_shows_them_unread(
    counted, client, users, drain
) -> None:
    alice, bob, _ = users
    hub = counted.hub
    streams = [hub.open(user, hub.position, math.inf) for user in (alice, bob)]
    await counted.settled()
    sent = [await stored(client, drain, alice, bob, f"Привет 👋 {n}") for n in range(3)]
    await until(lambda: all(len(s.waiting) == 3 for s in streams))
    assert counted.statements == []
    listed = await client.get(f"/messages?with_user={bob}", headers=as_user(alice))
    assert [m["id"] for m in listed.json()] == sent
    for stream in streams:
        assert messages(stream) == listed.json()


async def test_a_cursor_an_announcement_lacks_makes_the_hub_read_postgres(
    counted, client, users, drain, message_settings
) -> None:
    alice, bob, _ = users
    hub = counted.hub
    stream = hub.open(bob, hub.position, math.inf)
    await counted.settled()
    first = await stored(client, drain, alice, bob, "before the gap")
    await until(lambda: len(stream.waiting) == 1)
    # A cursor taken and never stored, as by a transaction that rolled back.
    engine = create_async_engine(message_settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text("SELECT nextval('cursors')"))
    await engine.dispose()
    second = await stored(client, drain, alice, bob, "after the gap")
    await until(lambda: len(stream.waiting) == 2)
    assert len(counted.statements) == 1
    assert [m["id"] for m in messages(stream)] == [first, second]
    cursors = [t.cursor for t in stream.waiting]
    assert cursors[1] == cursors[0] + 2
    assert hub.position == cursors[1]


async def test_with_no_stream_open_announcements_move_the_cursor_without_a_query(
    counted, client, users, drain
) -> None:
    alice, bob, _ = users
    hub = counted.hub
    await counted.settled()
    before = hub.position
    await stored(client, drain, alice, bob, "to no one here")
    await until(lambda: hub.position > before)
    assert counted.statements == []
    stream = hub.open(bob, hub.position, math.inf)
    sent = await stored(client, drain, alice, bob, "to an open stream")
    await until(lambda: len(stream.waiting) == 1)
    assert [m["id"] for m in messages(stream)] == [sent]
    assert counted.statements == []
