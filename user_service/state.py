"""user_service's long-lived objects, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from user_service.config import Settings
from user_service.security import Hasher
from user_service.sessions import Sessions


@dataclass(frozen=True)
class UserService:
    """What the routes use: the settings, the database, the password hasher, and what
    sessions need (Redis, to announce the ended ones)."""

    settings: Settings
    engine: AsyncEngine
    transactions: async_sessionmaker[AsyncSession]
    hasher: Hasher
    sessions: Sessions


def current(request: Request) -> UserService:
    """The service's state."""
    found: UserService = request.app.state.service
    return found
