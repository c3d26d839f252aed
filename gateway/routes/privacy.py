"""Deleting messages, blocking, read receipts, preferences and erasing the account.

Owned by message_service, but for the account itself (user_service); ``/me`` answers
from both."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.responses import JSONResponse

from common.errors import error_responses
from common.schemas import (
    MAX_BIGINT,
    BlockRead,
    ConversationRead,
    Me,
    PageLimit,
    PasswordConfirmation,
    PreferencesUpdate,
    ReadUpTo,
)
from gateway.deps import Caller, CurrentUser, services
from gateway.routes.auth import for_session
from gateway.routes.users import UNAVAILABLE

router = APIRouter(tags=["privacy"])
UserIdPath = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="the other user's id")]


@router.delete(
    "/messages/{message_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, *UNAVAILABLE, challenge="always"),
)
async def delete_message(
    request: Request, user_id: CurrentUser, message_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)]
) -> Response:
    """Delete a message you sent, stored or still queued: gone for both of you (a queued
    one is never stored); both streams get `event: deleted`. 403 for its receiver."""
    return await services(request).upstreams.forward(
        request, "messages", f"/messages/{message_id}", user_id=user_id
    )


@router.put(
    "/blocks/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, *UNAVAILABLE, challenge="always"),
)
async def block(request: Request, caller: CurrentUser, user_id: UserIdPath) -> Response:
    """Block a user: from now on, what they send never reaches you (not in your history,
    your stream or `/messages/{id}`), and they cannot tell. You cannot send to them."""
    return await services(request).upstreams.forward(
        request, "messages", f"/blocks/{user_id}", user_id=caller
    )


@router.delete(
    "/blocks/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 422, *UNAVAILABLE, challenge="always"),
)
async def unblock(request: Request, caller: CurrentUser, user_id: UserIdPath) -> Response:
    """Unblock a user; what they sent while blocked stays unseen."""
    return await services(request).upstreams.forward(
        request, "messages", f"/blocks/{user_id}", user_id=caller
    )


@router.get(
    "/blocks",
    response_model=list[BlockRead],
    responses=error_responses(401, *UNAVAILABLE, challenge="always"),
)
async def blocks(request: Request, caller: CurrentUser) -> Response:
    """Whom you block, oldest block first."""
    return await services(request).upstreams.forward(request, "messages", "/blocks", user_id=caller)


@router.post(
    "/conversations/{user_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 413, 422, *UNAVAILABLE, challenge="always"),
)
async def mark_read(
    data: ReadUpTo, request: Request, caller: CurrentUser, user_id: UserIdPath
) -> Response:
    """You have read your conversation with a user up to a cursor. With read receipts on
    (yours and theirs), they see `read_at` on those messages and get `event: read`."""
    return await services(request).upstreams.forward(
        request,
        "messages",
        f"/conversations/{user_id}/read",
        user_id=caller,
        body=await request.body(),
    )


@router.get(
    "/conversations",
    response_model=list[ConversationRead],
    responses=error_responses(401, 422, *UNAVAILABLE, challenge="always"),
)
async def conversations(request: Request, caller: CurrentUser, limit: PageLimit = 100) -> Response:
    """Your conversations, the latest first, with how many messages are unread in each."""
    return await services(request).upstreams.forward(
        request, "messages", "/conversations", user_id=caller, params={"limit": str(limit)}
    )


async def _me(request: Request, user_id: int, preferences: Response) -> Response:
    """Your account and preferences, from the preferences message_service answered."""
    account = await services(request).upstreams.forward(
        request, "users", f"/users/{user_id}", user_id=user_id, method="GET"
    )
    for answer in (account, preferences):
        if answer.status_code != 200:
            return answer
    me = Me(**json.loads(bytes(account.body)), **json.loads(bytes(preferences.body)))
    return JSONResponse(me.model_dump())


@router.get(
    "/me", response_model=Me, responses=error_responses(401, *UNAVAILABLE, challenge="always")
)
async def me(request: Request, caller: CurrentUser) -> Response:
    """Your account and your preferences."""
    preferences = await services(request).upstreams.forward(
        request, "messages", "/preferences", user_id=caller
    )
    return await _me(request, caller, preferences)


@router.patch(
    "/me",
    response_model=Me,
    responses=error_responses(401, 413, 422, *UNAVAILABLE, challenge="always"),
)
async def update_me(data: PreferencesUpdate, request: Request, caller: CurrentUser) -> Response:
    """Change your preferences: `read_receipts` (off by default) sends and shows read
    receipts; both sides of a conversation must have them on."""
    preferences = await services(request).upstreams.forward(
        request, "messages", "/preferences", user_id=caller, body=await request.body()
    )
    return await _me(request, caller, preferences)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 413, 422, *UNAVAILABLE, challenge="token"),
)
async def erase(data: PasswordConfirmation, request: Request, caller: Caller) -> Response:
    """Erase your account, with your password once more: your sessions end at once, every
    message you sent is deleted for both sides, your blocks and preferences go; messages
    you received stay with their senders. Your name cannot be registered for 30 days."""
    return await for_session(request, caller, "/users/me")
