"""The message_service ASGI app: ``uvicorn message_service.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
import redis
import redis.asyncio
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from common.app import build_app
from common.db import database_ready
from common.sse import StreamHandoff
from common.users import KnownUsers
from message_service.config import Settings, get_settings
from message_service.enqueue import Batcher, JobOptions, MessageQueue
from message_service.idempotency import StoredSends
from message_service.ids import IdAllocator
from message_service.metrics import QueueCollector
from message_service.routes import events, messages, privacy
from message_service.state import MessageService, current
from message_service.stream import Hub

# Connections to Postgres per replica: sends use none (their ids come in blocks), reads
# one each for a statement.
DATABASE_POOL_SIZE = 10
# user_service answers the receiver checks; a slow one must not hold a send for long.
USER_SERVICE_TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=1)


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Open the database pool, the Redis clients and the user_service session; start
    the group-commit task. On shutdown, flush what is waiting and close everything."""
    engine = create_async_engine(
        settings.database_url, pool_size=DATABASE_POOL_SIZE, pool_pre_ping=True
    )
    async_redis = redis.asyncio.Redis.from_url(settings.redis_url, decode_responses=True)
    # The queueing script runs in a thread (it is one blocking round trip per batch).
    sync_redis = redis.Redis.from_url(settings.redis_url)
    http = aiohttp.ClientSession(timeout=USER_SERVICE_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar())
    queue = MessageQueue(
        sync_redis,
        JobOptions(
            retry_intervals=settings.retry_intervals,
            failure_ttl=settings.failed_job_ttl_seconds,
        ),
        max_batch=settings.max_batch,
        send_rate=settings.send_rate_per_user,
    )
    batcher = Batcher(queue, stored_answers=StoredSends(engine))
    users = KnownUsers(
        session=http,
        user_service_url=settings.user_service_url,
        internal_token=settings.internal_token.get_secret_value(),
        capacity=settings.known_users_cache_size,
        ttl=settings.known_users_ttl_seconds,
    )
    hub = Hub(
        engine=engine,
        redis=async_redis,
        poll_seconds=settings.stream_poll_seconds,
        keep_alive_seconds=settings.stream_keep_alive_seconds,
        buffer_limit=settings.stream_buffer_events,
        per_user=settings.streams_per_user,
        on_erased=users.forget,
    )
    app.state.service = MessageService(
        settings=settings,
        engine=engine,
        redis=async_redis,
        ids=IdAllocator(engine=engine, block_size=settings.id_block_size),
        users=users,
        batcher=batcher,
        hub=hub,
    )
    collector = QueueCollector(queue.queue)
    if settings.metrics_port:
        REGISTRY.register(collector)
    batcher.start()
    await hub.start()
    try:
        yield
    finally:
        if settings.metrics_port:
            REGISTRY.unregister(collector)
        await hub.stop()
        await batcher.stop()
        await http.close()
        await async_redis.aclose()
        sync_redis.close()
        await engine.dispose()


async def _database(request: Request) -> bool:
    return await database_ready(current(request).engine)


async def _redis(request: Request) -> bool:
    return bool(await current(request).redis.ping())


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build message_service."""
    settings = settings or get_settings()
    app = build_app(
        service="message_service",
        title="anonchat message_service",
        settings=settings,
        lifespan=partial(lifespan, settings=settings),
        checks={"database": _database, "redis": _redis},
        routers=[messages.router, events.router, privacy.router],
    )
    # Outermost: event streams are sent once every other layer has returned.
    app.add_middleware(StreamHandoff)
    return app
