"""The public event stream, owned by message_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from common.errors import error_responses
from common.schemas import MAX_BIGINT
from gateway.deps import Caller, services
from gateway.routes.users import UNAVAILABLE

router = APIRouter(tags=["events"])

EVENTS = """Each event has an `id` (the cursor: reconnect with `Last-Event-ID` to go on
after it) and an `event` name:

- `message`: a message the caller sent or received, as it is stored; `data` is the
  message as `/get_messages` shows it.
- `failed`: a message of the caller's that the database refused for good; `data` is
  `{"id", "receiver_id", "reason"}`.
- `reauthenticate` (no id, the last event): the access token expired; refresh it and
  reconnect with `Last-Event-ID`.

A comment line (`: keep-alive`) comes every 15 s when nothing else does. A client that
stops reading is cut off; it reconnects with its last id and loses nothing."""


@router.get(
    "/events",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(401, 422, 429, *UNAVAILABLE),
    },
    description=EVENTS,
)
async def events(
    request: Request,
    caller: Caller,
    cursor: Annotated[
        int | None,
        Query(ge=0, le=MAX_BIGINT, description="start after this cursor (if no Last-Event-ID)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="start after this event id, as an EventSource reconnecting does"),
    ] = None,
) -> Response:
    """Server-Sent Events: every message the caller sends or receives, as it is stored,
    after a cursor (everything since it first, then live)."""
    params = {"cursor": str(cursor)} if cursor is not None else {}
    return await services(request).streams.open(
        user_id=caller.user_id,
        session_id=caller.session_id,
        until=caller.expires,
        params=params,
        last_event_id=last_event_id,
    )
