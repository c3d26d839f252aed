"""Dependency helpers shared by the apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

T = TypeVar("T")


def from_state(attribute: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning ``app.state.<attribute>``, built in the app's lifespan."""

    # async: FastAPI runs a plain ``def`` dependency in its thread pool, which cost a
    # thread hand-off per dependency per request.
    async def dependency(request: Request) -> T:
        value = getattr(request.app.state, attribute)
        if not isinstance(value, kind):
            raise TypeError(f"app.state.{attribute} is not a {kind.__name__}")
        return value

    dependency.__name__ = f"app_state_{attribute}"
    return dependency


async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed when the route returns."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


async def autocommit(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection outside any transaction, for a read that is one statement: no BEGIN
    and COMMIT round trips around it."""
    engine: AsyncEngine = request.app.state.engine
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        yield connection
