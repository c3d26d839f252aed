"""What the gateway's routes use: the caller's identity, and the services built in the
lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from common.errors import Unauthorized
from common.tokens import InvalidToken
from common.users import KnownUsers
from gateway.config import Settings
from gateway.ratelimit import RateLimiter
from gateway.tokens import VerifiedTokens
from gateway.upstream import Upstreams

_bearer = HTTPBearer(auto_error=False, description="The access token from POST /login")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Services:
    """The gateway's long-lived objects, built once in the lifespan."""

    settings: Settings
    upstreams: Upstreams
    redis: Redis
    limiter: RateLimiter
    tokens: VerifiedTokens
    users: KnownUsers


def services(request: Request) -> Services:
    """The gateway's services. Routes call this rather than take each service as a
    dependency: every dependency costs each request (see ``common.bodies``)."""
    found: Services = request.app.state.services
    return found


async def _current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    """The id of the existing user whose valid access token came with the request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", headers=_CHALLENGE)
    gateway = services(request)
    try:
        user_id = gateway.tokens.user_id(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE) from exc
    if not await gateway.users.exists(user_id):
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE)
    return user_id


CurrentUser = Annotated[int, Depends(_current_user)]
