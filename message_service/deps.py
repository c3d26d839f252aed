"""Dependencies of message_service's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from common.internal import caller_id
from message_service.state import MessageService, current


async def _caller(x_user_id: Annotated[str | None, Header(include_in_schema=False)] = None) -> int:
    return caller_id(x_user_id)


async def _service(request: Request) -> MessageService:
    return current(request)


async def _reader(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection outside any transaction, for reads that are one statement each: no
    BEGIN and COMMIT round trips around them."""
    engine = current(request).engine
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        yield connection


CallerDep = Annotated[int, Depends(_caller)]
ServiceDep = Annotated[MessageService, Depends(_service)]
ReaderDep = Annotated[AsyncConnection, Depends(_reader, scope="function")]
