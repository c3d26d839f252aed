"""Deleting messages, blocking, read receipts and preferences, and erasing an account's
messages (called by the gateway on a user's behalf, and by user_service for erasures)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import TypeAdapter

from common.errors import error_responses
from common.schemas import (
    MAX_BIGINT,
    BlockRead,
    ConversationRead,
    PageLimit,
    PreferencesRead,
    PreferencesUpdate,
    ReadUpTo,
)
from message_service import blocking, deleting, receipts
from message_service.deps import CallerDep, ReaderDep, ServiceDep

router = APIRouter(tags=["privacy"])
UserIdPath = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
_BLOCKS = TypeAdapter(list[BlockRead])
_CONVERSATIONS = TypeAdapter(list[ConversationRead])


@router.delete(
    "/messages/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 503),
)
async def delete_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)], caller: CallerDep, service: ServiceDep
) -> None:
    """Delete a message the caller sent, stored or still queued, for both parties."""
    await deleting.delete_message(
        engine=service.engine, redis=service.redis, caller=caller, message_id=message_id
    )


@router.put(
    "/blocks/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def block(user_id: UserIdPath, caller: CallerDep, service: ServiceDep) -> None:
    """Block a user: from now on, what they send never reaches the caller."""
    await blocking.block(
        engine=service.engine,
        redis=service.redis,
        users=service.users,
        blocker=caller,
        blocked=user_id,
    )


@router.delete(
    "/blocks/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401)
)
async def unblock(user_id: UserIdPath, caller: CallerDep, service: ServiceDep) -> None:
    """Unblock a user (what they sent meanwhile stays unseen)."""
    await blocking.unblock(
        engine=service.engine, redis=service.redis, blocker=caller, blocked=user_id
    )


@router.get("/blocks", response_model=list[BlockRead], responses=error_responses(401))
async def blocks(caller: CallerDep, service: ServiceDep) -> list[BlockRead]:
    """Whom the caller blocks, oldest block first."""
    rows = await blocking.blocked_by(engine=service.engine, blocker=caller)
    return _BLOCKS.validate_python(rows, from_attributes=True)


@router.post(
    "/conversations/{user_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 422, 503),
)
async def mark_read(
    user_id: UserIdPath, data: ReadUpTo, caller: CallerDep, service: ServiceDep
) -> None:
    """The caller has read its conversation with a user up to a cursor."""
    await receipts.mark_read(
        engine=service.engine, redis=service.redis, reader=caller, other=user_id, up_to=data.up_to
    )


@router.get(
    "/conversations", response_model=list[ConversationRead], responses=error_responses(401, 422)
)
async def conversations(
    caller: CallerDep, reader: ReaderDep, limit: PageLimit = 100
) -> list[ConversationRead]:
    """The caller's conversations, the latest first, with what is unread in each."""
    rows = await receipts.conversations(connection=reader, user_id=caller, limit=limit)
    return _CONVERSATIONS.validate_python(rows, from_attributes=True)


@router.get("/preferences", response_model=PreferencesRead, responses=error_responses(401))
async def preferences(caller: CallerDep, reader: ReaderDep) -> PreferencesRead:
    """The caller's preferences."""
    return PreferencesRead(read_receipts=await receipts.sends_receipts(reader, caller))


@router.patch("/preferences", response_model=PreferencesRead, responses=error_responses(401, 422))
async def update_preferences(
    data: PreferencesUpdate, caller: CallerDep, service: ServiceDep
) -> PreferencesRead:
    """Change the caller's preferences."""
    await receipts.set_receipts(engine=service.engine, user_id=caller, on=data.read_receipts)
    return PreferencesRead(read_receipts=data.read_receipts)


@router.post(
    "/users/{user_id}/erase",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(503),
)
async def erase(user_id: UserIdPath, service: ServiceDep) -> None:
    """Everything of an erased account but the messages it received (user_service calls
    this once the account is gone; it may call it again)."""
    service.users.forget(user_id)
    await deleting.erase_user(engine=service.engine, redis=service.redis, user_id=user_id)
