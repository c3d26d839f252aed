"""Public message endpoints, owned by message_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from common.errors import error_responses
from common.schemas import (
    MAX_BIGINT,
    MessageQueued,
    MessageRead,
    MessageStatus,
    PageLimit,
    SampleMessage,
    SampleReceived,
    SendMessage,
)
from gateway.deps import CurrentUser, LimiterDep, SettingsDep, UpstreamsDep
from gateway.routes.users import UNAVAILABLE

router = APIRouter(tags=["messages"])

SAMPLE = SampleReceived(
    message=SampleMessage(sender="user123", message="Привет! Это тестовое сообщение.")
)


@router.post(
    "/send_message",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageQueued,
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, *UNAVAILABLE),
)
async def send_message(
    data: SendMessage,
    request: Request,
    upstreams: UpstreamsDep,
    user_id: CurrentUser,
    limiter: LimiterDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="repeat a send safely: the same key returns the first answer"),
    ] = None,
) -> Response:
    """Send a message as the caller. 202: queued (not yet stored) with its final id."""
    await limiter.hit(settings.send_rate_per_user, f"send:{user_id}", "messages")
    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else None
    return await upstreams.forward(
        request,
        "messages",
        "/messages",
        user_id=user_id,
        body=await request.body(),
        headers=headers,
    )


@router.get(
    "/get_messages",
    response_model=list[MessageRead],
    responses=error_responses(401, 422, *UNAVAILABLE),
)
async def get_messages(
    request: Request,
    upstreams: UpstreamsDep,
    user_id: CurrentUser,
    with_user: Annotated[
        int | None, Query(ge=1, le=MAX_BIGINT, description="only the conversation with this user")
    ] = None,
    limit: PageLimit = 100,
    cursor: Annotated[
        int, Query(ge=0, le=MAX_BIGINT, description="from the Link header of the previous page")
    ] = 0,
) -> Response:
    """Messages the caller sent or received, oldest first; ``Link: <...>; rel="next"`` while
    more remain. ``X-Next-Cursor`` says where to continue: call again with it as ``cursor``
    to get messages stored since."""
    params = {"limit": str(limit), "cursor": str(cursor)}
    if with_user is not None:
        params["with_user"] = str(with_user)
    return await upstreams.forward(request, "messages", "/messages", user_id=user_id, params=params)


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    responses=error_responses(401, 404, 422, *UNAVAILABLE),
)
async def get_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    request: Request,
    upstreams: UpstreamsDep,
    user_id: CurrentUser,
) -> Response:
    """One message the caller sent or received: queued, persisted or failed."""
    return await upstreams.forward(request, "messages", f"/messages/{message_id}", user_id=user_id)


@router.get("/receive_message", response_model=SampleReceived, response_model_by_alias=True)
async def receive_message() -> SampleReceived:
    """A fixed sample message, for smoke tests; no token needed."""
    return SAMPLE
