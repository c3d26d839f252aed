"""Sending and reading messages (called by the gateway on a user's behalf)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import TypeAdapter

from common.bodies import documented, read_body
from common.errors import error_responses
from common.internal import USER_ID_HEADER, caller_id
from common.paging import next_link
from common.schemas import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_HELP,
    IDEMPOTENCY_KEY_SCHEMA,
    MAX_BIGINT,
    MessageQueued,
    MessageRead,
    MessageStatus,
    PageLimit,
    SendMessage,
)
from message_service import reading, sending
from message_service.deps import CallerDep, ReaderDep, ServiceDep
from message_service.state import current

router = APIRouter(tags=["messages"])
_PAGE = TypeAdapter(list[MessageRead])


@router.post(
    "/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageQueued,
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
    openapi_extra=documented(
        SendMessage, headers={IDEMPOTENCY_KEY: (IDEMPOTENCY_KEY_HELP, IDEMPOTENCY_KEY_SCHEMA)}
    ),
)
async def send(request: Request) -> Response:
    """Queue a message from the caller; 202 once Redis holds it, with its final id."""
    caller = caller_id(request.headers.get(USER_ID_HEADER))
    data = await read_body(request, SendMessage)
    accepted = await sending.accept(
        service=current(request),
        caller=caller,
        data=data,
        idempotency_key=request.headers.get(IDEMPOTENCY_KEY),
    )
    answer = MessageQueued(
        id=accepted.id,
        sender_id=caller,
        receiver_id=data.receiver_id,
        created_at=accepted.created_at,
    )
    return Response(
        answer.model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
        headers={"Idempotency-Replayed": "true"} if accepted.replayed else None,
    )


@router.get("/messages", response_model=list[MessageRead], responses=error_responses(401, 422))
async def list_messages(
    request: Request,
    caller: CallerDep,
    reader: ReaderDep,
    with_user: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    limit: PageLimit = 100,
    cursor: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
) -> Response:
    """The caller's messages, oldest first; ``Link`` names the next page while more remain
    (with ``before``, the previous page, still after ``cursor``)."""
    rows = await reading.list_messages(
        connection=reader,
        caller=caller,
        with_user=with_user,
        after=cursor,
        before=before,
        limit=limit + 1,
    )
    more = len(rows) > limit
    page = rows[:limit] if before is None else rows[-limit:]
    empty_after = cursor if before is None else before - 1
    after = page[-1].cursor if page else empty_after
    # Where to continue from: to read the next page now, or new messages later.
    headers = {"X-Next-Cursor": str(after)}
    if more and before is None:
        headers["Link"] = next_link(request.url, limit=limit, cursor=after)
    elif more:
        headers["Link"] = next_link(request.url, "prev", limit=limit, before=page[0].cursor)
    # Serialized here, once (response_model still documents it).
    body = _PAGE.dump_json(_PAGE.validate_python(page, from_attributes=True))
    return Response(body, media_type="application/json", headers=headers)


@router.get(
    "/messages/{message_id}", response_model=MessageStatus, responses=error_responses(401, 404)
)
async def get_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    caller: CallerDep,
    reader: ReaderDep,
    service: ServiceDep,
) -> MessageStatus:
    """One message the caller sent or received, with where it is on its way to storage."""
    message, state = await reading.message_status(
        connection=reader, redis=service.redis, caller=caller, message_id=message_id
    )
    if isinstance(message, dict):
        return MessageStatus.model_validate({**message, "status": state})
    return MessageStatus.model_validate(
        {**MessageRead.model_validate(message, from_attributes=True).model_dump(), "status": state}
    )
