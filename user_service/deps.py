"""Dependencies of user_service's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.state import UserService, current


async def _service(request: Request) -> UserService:
    return current(request)


async def _transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed when the route returns."""
    async with current(request).sessions() as session, session.begin():
        yield session


ServiceDep = Annotated[UserService, Depends(_service)]
SessionDep = Annotated[AsyncSession, Depends(_transaction, scope="function")]
