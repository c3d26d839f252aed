"""Dependencies of message_service's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from common.deps import autocommit, from_state, transaction
from common.internal import caller_id


async def _caller(x_user_id: Annotated[str | None, Header(include_in_schema=False)] = None) -> int:
    return caller_id(x_user_id)


SessionDep = Annotated[AsyncSession, Depends(transaction, scope="function")]
ReaderDep = Annotated[AsyncConnection, Depends(autocommit, scope="function")]
CallerDep = Annotated[int, Depends(_caller)]
RedisDep = Annotated[Redis, Depends(from_state("redis", Redis))]
