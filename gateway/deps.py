"""What the gateway's routes use: the caller's identity, and the services built in the
lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from common.errors import Unauthorized
from common.tokens import Claims, InvalidToken
from common.users import KnownUsers
from gateway.config import Settings
from gateway.ratelimit import RateLimiter
from gateway.sessions import EndedSessions
from gateway.streams import Streams
from gateway.tokens import VerifiedTokens
from gateway.upstream import Upstreams

_bearer = HTTPBearer(auto_error=False, description="The access token from POST /login")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Services:
    """The gateway's long-lived objects, built once in the lifespan."""

    settings: Settings
    upstreams: Upstreams
    streams: Streams
    ended: EndedSessions
    redis: Redis
    limiter: RateLimiter
    tokens: VerifiedTokens
    users: KnownUsers


def services(request: Request) -> Services:
    """The gateway's services. Routes call this rather than take each service as a
    dependency: every dependency costs each request (see ``common.bodies``)."""
    found: Services = request.app.state.services
    return found


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Claims:
    """The claims of the valid access token of an existing user that came with the request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", headers=_CHALLENGE)
    gateway = services(request)
    try:
        claims = gateway.tokens.verify(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE) from exc
    if claims.session_id is not None and claims.session_id in gateway.ended:
        raise Unauthorized("the session has ended: log in again", headers=_CHALLENGE)
    if not await gateway.users.exists(claims.user_id):
        raise Unauthorized("invalid or expired token", headers=_CHALLENGE)
    return claims


# Two dependencies rather than one on top of the other: each level costs every request.
async def _caller(request: Request, credentials: Bearer) -> Claims:
    return await _authenticate(request, credentials)


async def _current_user(request: Request, credentials: Bearer) -> int:
    return (await _authenticate(request, credentials)).user_id


Caller = Annotated[Claims, Depends(_caller)]
CurrentUser = Annotated[int, Depends(_current_user)]
