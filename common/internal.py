"""How the gateway and the services trust each other.

Services accept a request only when it carries the internal token that the gateway (or
another service) shares with them; only then do they believe its identity header.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import Unauthorized, send_error

INTERNAL_TOKEN_HEADER = "x-internal-token"
USER_ID_HEADER = "x-user-id"
# The session of the caller's access token, for what ends sessions (logout, password).
SESSION_ID_HEADER = "x-session-id"
REQUEST_ID_HEADER = "x-request-id"

request_id: ContextVar[str] = ContextVar("request_id", default="-")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNAUTHORIZED = "this service accepts requests from the gateway only"


def valid_request_id(value: str | None) -> str | None:
    """The caller's request id when it is safe to log and pass on, else None."""
    return value if value and _REQUEST_ID.fullmatch(value) else None


class InternalAuthMiddleware:
    """Refuse every request without the internal token, except the health probes."""

    def __init__(self, app: ASGIApp, *, token: str, open_paths: Iterable[str]) -> None:
        self.app = app
        self.token = token.encode()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        presented = headers.get(INTERNAL_TOKEN_HEADER.encode(), b"")
        if not hmac.compare_digest(presented, self.token):
            await send_error(send, 401, _UNAUTHORIZED, code="unauthorized")
            return
        rid = valid_request_id(headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1"))
        reset = request_id.set(rid or "-")
        try:
            await self.app(scope, receive, send)
        finally:
            request_id.reset(reset)


def caller_id(header: str | None) -> int:
    """The caller's user id from the identity header the gateway set."""
    if header is None or not header.isdigit():
        raise Unauthorized("missing caller identity")
    return int(header)
