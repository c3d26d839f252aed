"""Message ids without a Postgres round trip per send.

Each replica takes blocks of ids from the ``id_blocks`` row (one UPDATE per block) and
hands them out from memory. Ids are unique across replicas and restarts (a block is never
handed out twice; a restart abandons the rest of its block) and owe nothing to Redis. A
spare block is fetched when the current one is half used, so a replica keeps at least
half a block of ids in hand while Postgres is down.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from common.errors import ServiceUnavailable

log = logging.getLogger(__name__)

_TAKE_BLOCK = text(
    "UPDATE id_blocks SET next_id = next_id + :size WHERE name = 'messages' "
    "RETURNING next_id - :size"
)
RETRY_AFTER_FAILURE = 1.0


class IdAllocator:
    """Hands out message ids from blocks reserved in Postgres."""

    def __init__(self, *, engine: AsyncEngine, block_size: int) -> None:
        self.engine = engine
        self.block_size = block_size
        self._next = self._end = 0
        self._spare: tuple[int, int] | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._failed_at = -RETRY_AFTER_FAILURE

    async def next_id(self) -> int:
        """A new message id."""
        while self._next >= self._end:
            if self._spare is not None:
                (self._next, self._end), self._spare = self._spare, None
            else:
                await self._fetch_spare(wait=True)
        value = self._next
        self._next += 1
        if self._spare is None and self._end - self._next <= self.block_size // 2:
            await self._fetch_spare(wait=False)
        return value

    async def _fetch_spare(self, *, wait: bool) -> None:
        if self._fetching is None:
            if not wait and time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
                return
            self._fetching = asyncio.create_task(self._take_block())
        if not wait:
            return
        await asyncio.shield(self._fetching)
        if self._spare is None and self._next >= self._end:
            raise ServiceUnavailable(
                "messages cannot be accepted right now (message ids unavailable), retry shortly"
            )

    async def _take_block(self) -> None:
        try:
            async with self.engine.begin() as connection:
                start = (
                    await connection.execute(_TAKE_BLOCK, {"size": self.block_size})
                ).scalar_one()
            self._spare = (start, start + self.block_size)
        except Exception:
            self._failed_at = time.monotonic()
            log.warning("could not reserve a block of message ids", exc_info=True)
        finally:
            self._fetching = None
