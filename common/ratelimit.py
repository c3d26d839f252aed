"""Rate limits shared by every replica, kept in Redis.

GCRA (the generic cell rate algorithm): one key per limited subject holding its
"theoretical arrival time", updated inside a Lua script, so a check is part of one round
trip and the limits hold across replicas. Written here rather than taken from
``limits``, whose asyncio Redis storage needs a second Redis client library (coredis),
and so that message_service can check a whole batch of sends inside its enqueue script.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field
from pydantic_settings import NoDecode

from common.errors import TooManyRequests
from common.metrics import RATE_LIMIT_REFUSALS

KEY_PREFIX = "anonchat:rate:"

# Lua functions for the scripts that check rates. gcra(key, interval ms, burst ms, now ms)
# counts one request and returns 0, or returns the ms until one would be allowed.
GCRA_LUA = """
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
local function gcra(key, interval, burst, now)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allowed_at = new_tat - burst
  if allowed_at > now then return allowed_at - now end
  redis.call('SET', key, new_tat, 'PX', new_tat - now)
  return 0
end
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

    @property
    def burst_ms(self) -> int:
        return self.interval_ms * self.limit


RateSetting = Annotated[Rate, NoDecode, BeforeValidator(_parse)]


def too_many(what: str, wait_ms: int) -> TooManyRequests:
    """The 429 for a request refused for ``wait_ms`` more milliseconds (counted in the
    refusals metric under ``what``)."""
    RATE_LIMIT_REFUSALS.labels(what).inc()
    seconds = max(1, math.ceil(wait_ms / 1000))
    return TooManyRequests(
        f"too many {what}, retry in {seconds} s", headers={"Retry-After": str(seconds)}
    )
