"""Rate limits shared by every gateway replica, kept in Redis.

GCRA (the generic cell rate algorithm): one key per limited subject holding its
"theoretical arrival time", updated by one Lua script call, so a check is one round trip
and the limits hold across replicas. Written here rather than taken from ``limits``,
whose asyncio Redis storage needs a second Redis client library (coredis).
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import Request
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_settings import NoDecode
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import TooManyRequests

log = logging.getLogger(__name__)

# KEYS[1]: the subject's key. ARGV[1]: ms between requests at the steady rate;
# ARGV[2]: ms of burst allowed (limit x interval). Returns {allowed, retry-after ms}.
_GCRA = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - burst
if allowed_at > now then
  return {0, allowed_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, 0}
"""


def _parse(value: object) -> object:
    if isinstance(value, str):
        limit, _, period = value.partition("/")
        return {"limit": limit, "period": period}
    return value


class Rate(BaseModel):
    """``limit`` requests per ``period`` seconds, written ``"limit/period"``."""

    limit: int = Field(ge=1)
    period: float = Field(gt=0)

    @property
    def interval_ms(self) -> int:
        return max(1, round(self.period * 1000 / self.limit))


RateSetting = Annotated[Rate, NoDecode, BeforeValidator(_parse)]


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy, set uvicorn's --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """Checks named rates against Redis; fails open (with a warning) if Redis is down."""

    def __init__(self, redis: Redis, *, prefix: str = "anonchat:rate:") -> None:
        self.redis = redis
        self.prefix = prefix
        self.script = redis.register_script(_GCRA)

    async def hit(self, rate: Rate, key: str, what: str) -> None:
        """Count one request of ``key``; TooManyRequests when it is over ``rate``."""
        try:
            allowed, retry_ms = await self.script(
                keys=[self.prefix + key], args=[rate.interval_ms, rate.interval_ms * rate.limit]
            )
        except RedisError:
            log.warning("rate limit %s not checked: Redis unavailable", key, exc_info=True)
            return
        if not allowed:
            seconds = max(1, math.ceil(int(retry_ms) / 1000))
            raise TooManyRequests(
                f"too many {what}, retry in {seconds} s", headers={"Retry-After": str(seconds)}
            )
