"""The gateway's memory of access tokens it has verified."""

from __future__ import annotations

import time
from collections import OrderedDict

from common.tokens import Claims, InvalidToken, verify_token


class VerifiedTokens:
    """Tokens whose signature was checked, each kept until it expires (an LRU of
    ``capacity``), so that a client's every call does not pay for the check again (a
    dictionary hit costs a thousandth of an HS256 verification)."""

    def __init__(self, *, secret: str, capacity: int) -> None:
        self.secret = secret
        self.capacity = capacity
        self._valid: OrderedDict[str, Claims] = OrderedDict()

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; :class:`InvalidToken` for anything else."""
        known = self._valid.get(token)
        if known is not None:
            if known.expires <= time.time():
                del self._valid[token]
                raise InvalidToken("Signature has expired")
            self._valid.move_to_end(token)
            return known
        claims = verify_token(secret=self.secret, token=token)
        self._valid[token] = claims
        if len(self._valid) > self.capacity:
            self._valid.popitem(last=False)
        return claims
