"""The gateway ASGI app: ``uvicorn gateway.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis

from common.app import build_app
from common.sse import StreamHandoff
from common.users import KnownUsers
from gateway import api_docs, web
from gateway.config import Settings, get_settings
from gateway.deps import Services, services
from gateway.middleware import EdgeMiddleware
from gateway.ratelimit import RateLimiter
from gateway.routes import auth, events, messages, privacy, users
from gateway.sessions import EndedSessions
from gateway.streams import Streams
from gateway.tokens import VerifiedTokens
from gateway.upstream import Upstreams

# Tokens remembered as verified (about 0.4 KB each), and users seen to exist.
VERIFIED_TOKENS = 10_000
KNOWN_USERS = 100_000
# Redis holds only the login and registration limits here, which fail open: never wait
# long for it.
REDIS_TIMEOUT_SECONDS = 1.0

DESCRIPTION = """Anonymous chat: register with only a name and a password, log in, see who
is there, and exchange direct messages. Every endpoint but registration, login and the
probes needs `Authorization: Bearer <token>` from `POST /login`. Errors share one shape:
`{"detail": "...", "code": "..."}`."""


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Open the pooled upstream session; close it on shutdown."""
    upstreams = Upstreams(
        urls={"users": settings.user_service_url, "messages": settings.message_service_url},
        internal_token=settings.internal_token.get_secret_value(),
        connect_timeout=settings.upstream_connect_timeout,
        timeout=settings.upstream_timeout,
        pool_size=settings.upstream_pool_size,
    )
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    streams = Streams(
        url=settings.message_service_url,
        internal_token=settings.internal_token.get_secret_value(),
        connect_timeout=settings.upstream_connect_timeout,
    )
    # A subscription waits on its connection: no read timeout on this one.
    listening = Redis.from_url(settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    ended = EndedSessions(
        listening,
        keep_seconds=settings.ended_sessions_keep_seconds,
        poll_seconds=settings.ended_sessions_poll_seconds,
        on_end=streams.end_session,
    )
    app.state.services = Services(
        settings=settings,
        upstreams=upstreams,
        streams=streams,
        ended=ended,
        redis=redis,
        limiter=RateLimiter(redis),
        tokens=VerifiedTokens(
            secret=settings.jwt_secret.get_secret_value(), capacity=VERIFIED_TOKENS
        ),
        users=KnownUsers(
            session=upstreams.session,
            user_service_url=settings.user_service_url,
            internal_token=settings.internal_token.get_secret_value(),
            capacity=KNOWN_USERS,
            ttl=settings.known_users_ttl_seconds,
        ),
    )
    await ended.start()
    try:
        yield
    finally:
        await ended.stop()
        await upstreams.close()
        await streams.close()
        await redis.aclose()
        await listening.aclose()


async def _user_service(request: Request) -> bool:
    return await services(request).upstreams.ready("users")


async def _redis(request: Request) -> bool:
    return bool(await services(request).redis.ping())


async def _message_service(request: Request) -> bool:
    return await services(request).upstreams.ready("messages")


def _configured_limits(settings: Settings) -> Callable[[dict[str, Any]], None]:
    """State in the document the limits the services are configured with: the password's
    minimum length and a message's maximum length."""

    def amend(document: dict[str, Any]) -> None:
        for schema in document["components"]["schemas"].values():
            for field in schema.get("properties", {}).values():
                if field.get("format") == "password":
                    field["minLength"] = settings.password_min_length
        send = document["paths"]["/send_message"]["post"]["requestBody"]
        content = send["content"]["application/json"]["schema"]["properties"]["content"]
        content["maxLength"] = settings.max_content_length

    return amend


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway."""
    settings = settings or get_settings()
    app = build_app(
        service="gateway",
        title="anonchat",
        description=DESCRIPTION,
        version="1.0.0",
        settings=settings,
        lifespan=partial(lifespan, settings=settings),
        checks={
            "user_service": _user_service,
            "message_service": _message_service,
            "redis": _redis,
        },
        routers=[
            auth.router,
            users.router,
            messages.router,
            privacy.router,
            events.router,
            web.router(),
            api_docs.router(),
        ],
        internal=False,
        # /docs is api_docs': FastAPI's pages load Swagger UI and ReDoc from a CDN.
        docs_url=None,
        redoc_url=None,
        amend_document=_configured_limits(settings),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost: event streams are sent once every other layer has returned.
    app.add_middleware(StreamHandoff)
    return app
