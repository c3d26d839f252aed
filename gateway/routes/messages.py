"""Public message endpoints, owned by message_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from common.bodies import documented
from common.errors import error_responses
from common.schemas import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_HELP,
    IDEMPOTENCY_KEY_SCHEMA,
    MAX_BIGINT,
    MessageQueued,
    MessageRead,
    MessageStatus,
    PageLimit,
    SampleMessage,
    SampleReceived,
    SendMessage,
)
from gateway.deps import CurrentUser, services
from gateway.routes.users import UNAVAILABLE

router = APIRouter(tags=["messages"])

SAMPLE = SampleReceived(
    message=SampleMessage(sender="user123", message="Привет! Это тестовое сообщение.")
)


@router.post(
    "/send_message",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageQueued,
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, *UNAVAILABLE, challenge="always"),
    openapi_extra=documented(
        SendMessage, headers={IDEMPOTENCY_KEY: (IDEMPOTENCY_KEY_HELP, IDEMPOTENCY_KEY_SCHEMA)}
    ),
)
async def send_message(request: Request, user_id: CurrentUser) -> Response:
    """Send a message as the caller. 202: queued (not yet stored) with its final id.

    The body goes to message_service as it came: it checks the body and the caller's
    send rate as it queues the message."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    return await services(request).upstreams.forward(
        request,
        "messages",
        "/messages",
        user_id=user_id,
        body=await request.body(),
        headers={IDEMPOTENCY_KEY: key} if key is not None else None,
    )


@router.get(
    "/get_messages",
    response_model=list[MessageRead],
    responses=error_responses(401, 422, *UNAVAILABLE, challenge="always"),
)
async def get_messages(
    request: Request,
    user_id: CurrentUser,
    with_user: Annotated[
        int | None, Query(ge=1, le=MAX_BIGINT, description="only the conversation with this user")
    ] = None,
    limit: PageLimit = 100,
    cursor: Annotated[
        int, Query(ge=0, le=MAX_BIGINT, description="from the Link header of the previous page")
    ] = 0,
    before: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_BIGINT,
            description="read back: the last messages before this cursor (the newest page: "
            "the largest cursor, 9223372036854775807); with `cursor` too, none at or "
            "before `cursor`",
        ),
    ] = None,
) -> Response:
    """Messages the caller sent or received, oldest first; ``Link: <...>; rel="next"`` while
    more remain. ``X-Next-Cursor`` says where to continue: call again with it as ``cursor``
    to get messages stored since. With ``before``, the page of messages just before that
    cursor, still oldest first, and ``Link: <...>; rel="prev"`` while older ones remain."""
    params = {"limit": str(limit), "cursor": str(cursor)}
    if with_user is not None:
        params["with_user"] = str(with_user)
    if before is not None:
        params["before"] = str(before)
    return await services(request).upstreams.forward(
        request, "messages", "/messages", user_id=user_id, params=params
    )


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    responses=error_responses(401, 404, 422, *UNAVAILABLE, challenge="always"),
)
async def get_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    request: Request,
    user_id: CurrentUser,
) -> Response:
    """One message the caller sent or received: queued, persisted or failed."""
    return await services(request).upstreams.forward(
        request, "messages", f"/messages/{message_id}", user_id=user_id
    )


@router.get("/receive_message", response_model=SampleReceived, response_model_by_alias=True)
async def receive_message() -> SampleReceived:
    """A fixed sample message, for smoke tests; no token needed."""
    return SAMPLE
