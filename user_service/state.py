"""user_service's long-lived objects, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from user_service.config import Settings


@dataclass(frozen=True)
class UserService:
    """What the routes use: the settings, the database and the password hasher."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hasher: CryptContext


def current(request: Request) -> UserService:
    """The service's state."""
    found: UserService = request.app.state.service
    return found
