"""How an ended session reaches every gateway replica: user_service writes its id to a
Redis sorted set (scored by when it ended) and publishes it; each gateway keeps the set
in memory, so that no request costs a call (see gateway/sessions.py).

An entry is needed only while access tokens of its session may still be valid, so
entries older than the access token lifetime are dropped as new ones are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from redis.asyncio import Redis

ENDED_KEY = "anonchat:sessions:ended"
ENDED_CHANNEL = "anonchat:sessions:ended"

# KEYS[1]: the set. ARGV[1]: how long an entry is kept (ms), ARGV[2]: the channel, then the
# session ids. Scores by Redis' clock, so that every writer and reader agrees on it.
_ANNOUNCE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now, ARGV[i])
  redis.call('PUBLISH', ARGV[2], ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return now
"""


async def announce_ended(redis: Redis, session_ids: Iterable[str], *, keep_seconds: float) -> None:
    """Tell every gateway that these sessions have ended."""
    ids = list(session_ids)
    if ids:
        await redis.eval(_ANNOUNCE, 1, ENDED_KEY, int(keep_seconds * 1000), ENDED_CHANNEL, *ids)


async def ended_since(redis: Redis, since_ms: float) -> list[tuple[str, float]]:
    """The sessions that ended at or after ``since_ms`` (Redis' clock, ms), with when."""
    found = cast(
        "list[tuple[bytes | str, float]]",
        await redis.zrangebyscore(ENDED_KEY, since_ms, "+inf", withscores=True),
    )
    return [
        (member.decode() if isinstance(member, bytes) else member, float(score))
        for member, score in found
    ]
