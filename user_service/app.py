"""The user_service ASGI app: ``uvicorn user_service.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from common.app import build_app
from common.db import database_ready
from user_service.config import Settings, get_settings
from user_service.erasure import Erasures
from user_service.routes import auth, users
from user_service.security import Hasher, password_context
from user_service.sessions import Sessions
from user_service.state import UserService, current

# Connections to Postgres per replica; a request holds one for its transaction.
DATABASE_POOL_SIZE = 10
# An account's erasure asks message_service, which may take a while for a long history.
MESSAGE_SERVICE_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=1)


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Open the database pool and prepare the hasher; close the pool on shutdown."""
    engine = create_async_engine(
        settings.database_url, pool_size=DATABASE_POOL_SIZE, pool_pre_ping=True
    )
    redis = Redis.from_url(settings.redis_url)
    transactions = async_sessionmaker(engine, expire_on_commit=False)
    http = aiohttp.ClientSession(timeout=MESSAGE_SERVICE_TIMEOUT)
    erasures = Erasures(transactions=transactions, settings=settings, http=http)
    app.state.service = UserService(
        settings=settings,
        engine=engine,
        transactions=transactions,
        hasher=Hasher(password_context(settings), concurrency=settings.hash_concurrency),
        sessions=Sessions(settings=settings, redis=redis),
        erasures=erasures,
    )
    erasures.start()
    try:
        yield
    finally:
        await erasures.stop()
        await http.close()
        await redis.aclose()
        await engine.dispose()


async def _database(request: Request) -> bool:
    return await database_ready(current(request).engine)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build user_service."""
    settings = settings or get_settings()
    return build_app(
        service="user_service",
        title="anonchat user_service",
        settings=settings,
        lifespan=partial(lifespan, settings=settings),
        checks={"database": _database},
        routers=[users.router, auth.router],
    )
