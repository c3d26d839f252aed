"""Whether a user exists, asking user_service only about ids not seen lately."""

from __future__ import annotations

import time
from collections import OrderedDict

import aiohttp

from common.errors import ServiceUnavailable
from common.internal import INTERNAL_TOKEN_HEADER


class KnownUsers:
    """An LRU set of user ids seen to exist in the last ``ttl`` seconds; misses are asked
    of user_service. Unknown ids are not remembered: the user may register a moment later;
    a user removed from the database is forgotten within ``ttl``.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        user_service_url: str,
        internal_token: str,
        capacity: int,
        ttl: float,
    ) -> None:
        self.session = session
        self.url = user_service_url.rstrip("/")
        self.headers = {INTERNAL_TOKEN_HEADER: internal_token}
        self.capacity = capacity
        self.ttl = ttl
        self._known: OrderedDict[int, float] = OrderedDict()

    async def exists(self, user_id: int) -> bool:
        """True when the user exists."""
        seen = self._known.get(user_id)
        if seen is not None and time.monotonic() - seen < self.ttl:
            self._known.move_to_end(user_id)
            return True
        try:
            async with self.session.get(
                f"{self.url}/users/{user_id}", headers=self.headers
            ) as response:
                if response.status == 404:
                    return False
                if response.status != 200:
                    raise ServiceUnavailable("user_service could not check the receiver")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ServiceUnavailable("user_service is unavailable, try again shortly") from exc
        self.remember(user_id)
        return True

    def forget(self, user_id: int) -> None:
        """Note that ``user_id`` no longer exists (its account was erased)."""
        self._known.pop(user_id, None)

    def remember(self, user_id: int) -> None:
        """Note that ``user_id`` exists."""
        self._known[user_id] = time.monotonic()
        self._known.move_to_end(user_id)
        if len(self._known) > self.capacity:
            self._known.popitem(last=False)
