"""Dependencies of the gateway's routes: the caller's identity and the upstreams."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.deps import from_state
from common.errors import Unauthorized
from common.tokens import InvalidToken, VerifiedTokens
from common.users import KnownUsers
from gateway.config import Settings
from gateway.ratelimit import RateLimiter
from gateway.upstream import Upstreams

_bearer = HTTPBearer(auto_error=False, description="The access token from POST /login")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def _current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """The id of the existing user whose valid access token came with the request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", headers=_CHALLENGE)
    tokens: VerifiedTokens = request.app.state.tokens
    try:
        user_id = tokens.user_id(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE) from exc
    users: KnownUsers = request.app.state.users
    if not await users.exists(user_id):
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE)
    return user_id


UpstreamsDep = Annotated[Upstreams, Depends(from_state("upstreams", Upstreams))]
LimiterDep = Annotated[RateLimiter, Depends(from_state("limiter", RateLimiter))]
SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
CurrentUser = Annotated[int, Depends(_current_user)]
