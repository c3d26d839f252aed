"""The user_service ASGI app: ``uvicorn user_service.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from common.app import build_app
from common.db import database_ready
from user_service.config import Settings, get_settings
from user_service.routes import users
from user_service.security import password_context


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database pool and prepare the hasher; close the pool on shutdown."""
    settings: Settings = app.state.settings
    engine = create_async_engine(settings.database_url, pool_size=10, pool_pre_ping=True)
    app.state.engine = engine
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    app.state.hasher = password_context(settings)
    # The first dummy_verify hashes its dummy secret: do it now, not in a login.
    app.state.hasher.dummy_verify()
    try:
        yield
    finally:
        await engine.dispose()


async def _database(request: Request) -> bool:
    return await database_ready(request.app.state.engine)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build user_service."""
    return build_app(
        title="anonchat user_service",
        settings=settings or get_settings(),
        lifespan=lifespan,
        checks={"database": _database},
        routers=[users.router],
    )
