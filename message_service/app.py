"""The message_service ASGI app: ``uvicorn message_service.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import redis
import redis.asyncio
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from common.app import build_app
from common.db import database_ready
from common.users import KnownUsers
from message_service.config import Settings, get_settings
from message_service.ids import IdAllocator
from message_service.queue import Batcher, JobOptions, MessageQueue
from message_service.routes import messages
from message_service.service import Outbox


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool, the Redis clients and the user_service session; start
    the group-commit task. On shutdown, flush what is waiting and close everything."""
    settings: Settings = app.state.settings
    engine = create_async_engine(settings.database_url, pool_size=10, pool_pre_ping=True)
    app.state.engine = engine
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app.state.redis = redis.asyncio.Redis.from_url(settings.redis_url, decode_responses=True)
    sync_redis = redis.Redis.from_url(settings.redis_url)
    http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=5, sock_connect=1),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    batcher = Batcher(
        MessageQueue(
            sync_redis,
            JobOptions(
                timeout=settings.job_timeout_seconds,
                retry_intervals=settings.retry_intervals,
                failure_ttl=settings.failed_job_ttl_seconds,
            ),
            max_batch=settings.max_batch,
            send_rate=settings.send_rate_per_user,
        )
    )
    app.state.outbox = Outbox(
        ids=IdAllocator(engine=engine, block_size=settings.id_block_size),
        users=KnownUsers(
            session=http,
            user_service_url=settings.user_service_url,
            internal_token=settings.internal_token.get_secret_value(),
            capacity=settings.known_users_cache_size,
            ttl=settings.known_users_ttl_seconds,
        ),
        batcher=batcher,
        redis=app.state.redis,
        max_content_length=settings.max_content_length,
        idempotency_ttl=settings.idempotency_ttl_seconds,
    )
    batcher.start()
    try:
        yield
    finally:
        await batcher.stop()
        await http.close()
        await app.state.redis.aclose()
        sync_redis.close()
        await engine.dispose()


async def _database(request: Request) -> bool:
    return await database_ready(request.app.state.engine)


async def _redis(request: Request) -> bool:
    return bool(await request.app.state.redis.ping())


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build message_service."""
    return build_app(
        title="anonchat message_service",
        settings=settings or get_settings(),
        lifespan=lifespan,
        checks={"database": _database, "redis": _redis},
        routers=[messages.router],
    )
