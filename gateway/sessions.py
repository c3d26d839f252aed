"""The sessions that have ended, known to this gateway without a call per request.

user_service announces each ended session (common/sessions.py). The gateway loads the
recent ones at start, then hears each new one on the Redis channel at once, and looks at
the set every ``poll_seconds`` as well (pub/sub is at most once: a restart of Redis, or
of the subscription, would lose one). A session that ended is refused by the next
request; its open event streams end with ``event: reauthenticate``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.metrics import dependency_error
from common.sessions import ENDED_CHANNEL, ended_since

log = logging.getLogger(__name__)
# Each look at the set reads back this far before the last one seen (ms), so that two
# sessions ended in the same millisecond are not missed.
OVERLAP_MS = 1000


class EndedSessions:
    """The sessions ended within ``keep_seconds``, by id."""

    def __init__(
        self,
        redis: Redis,
        *,
        keep_seconds: float,
        poll_seconds: float,
        on_end: Callable[[str], None] = lambda session: None,
    ) -> None:
        self.redis = redis
        self.keep_seconds = keep_seconds
        self.poll_seconds = poll_seconds
        self.on_end = on_end
        # Session id -> when it ended (Redis' clock, ms).
        self._ended: dict[str, float] = {}
        self._since_ms = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._ended

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _note(self, session_id: str, at_ms: float) -> None:
        if session_id not in self._ended:
            self._ended[session_id] = at_ms
            self.on_end(session_id)

    async def _look(self) -> None:
        """Read the set from a little before the last entry seen (by Redis' clock, as its
        scores are); forget what is old."""
        since = self._since_ms - OVERLAP_MS if self._since_ms else 0.0
        for session_id, at_ms in await ended_since(self.redis, since):
            self._note(session_id, at_ms)
            self._since_ms = max(self._since_ms, at_ms)
        oldest = time.time() * 1000 - self.keep_seconds * 1000
        for session_id in [s for s, at in self._ended.items() if at < oldest]:
            del self._ended[session_id]

    async def _poll(self) -> None:
        while True:
            try:
                await self._look()
            except (RedisError, OSError) as exc:
                dependency_error("redis")
                log.warning("ended sessions not read (Redis unavailable): %s", exc)
            await asyncio.sleep(self.poll_seconds)

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(ENDED_CHANNEL)
                    async for message in pubsub.listen():
                        data = message["data"]
                        session_id = data.decode() if isinstance(data, bytes) else str(data)
                        self._note(session_id, time.time() * 1000)
            except (RedisError, OSError) as exc:
                dependency_error("redis")
                log.warning("ended sessions not heard (Redis unavailable): %s", exc)
                await asyncio.sleep(self.poll_seconds)
