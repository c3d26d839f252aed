"""The gateway's rate limits (registrations and logins), one Redis round trip each.

Sends are limited by message_service, inside the script that queues them.
"""

from __future__ import annotations

import logging

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.metrics import dependency_error
from common.ratelimit import GCRA_LUA, KEY_PREFIX, Rate, too_many

log = logging.getLogger(__name__)

# KEYS[1]: the subject's key. ARGV: interval ms, burst ms. Returns the ms to wait (0: ok).
_CHECK = GCRA_LUA + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())"


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy, set uvicorn's --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """Checks named rates against Redis; fails open (with a warning) if Redis is down."""

    def __init__(self, redis: Redis, *, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self.script = redis.register_script(_CHECK)

    async def hit(self, rate: Rate, key: str, what: str) -> None:
        """Count one request of ``key``; TooManyRequests when it is over ``rate``."""
        try:
            wait_ms = await self.script(
                keys=[self.prefix + key], args=[rate.interval_ms, rate.burst_ms]
            )
        except RedisError:
            dependency_error("redis")
            log.warning("rate limit %s not checked: Redis unavailable", key, exc_info=True)
            return
        if wait_ms:
            raise too_many(what, int(wait_ms))
