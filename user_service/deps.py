"""Dependencies of user_service's routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Unauthorized
from common.internal import caller_id
from user_service.state import UserService, current


async def _service(request: Request) -> UserService:
    return current(request)


async def _transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed when the route returns."""
    async with current(request).transactions() as session, session.begin():
        yield session


ServiceDep = Annotated[UserService, Depends(_service)]
TransactionDep = Annotated[AsyncSession, Depends(_transaction, scope="function")]


async def _caller(x_user_id: Annotated[str | None, Header(include_in_schema=False)] = None) -> int:
    return caller_id(x_user_id)


async def _session(
    x_session_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> uuid.UUID:
    try:
        return uuid.UUID(x_session_id or "")
    except ValueError:
        raise Unauthorized("this access token belongs to no session: log in again") from None


CallerDep = Annotated[int, Depends(_caller)]
CallerSessionDep = Annotated[uuid.UUID, Depends(_session)]
