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
- `deleted`: a message its sender deleted; `data` is `{"id", "sender_id", "receiver_id"}`.
- `read`: to a sender, the receiver read up to a cursor; `data` is
  `{"reader_id", "up_to", "read_at"}`.
- `reauthenticate` (no id, the last event): the access token expired; refresh it and
  reconnect with `Last-Event-ID`.

The stream opens with `retry: 1000` (reconnect after a second). A comment line
(`: keep-alive`) comes every 15 s when nothing else does. A client that
stops reading is cut off; it reconnects with its last id and loses nothing."""


# One event of the stream (Open API 3.1 documents an event stream by its events).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"enum": ["message", "failed", "deleted", "read", "reauthenticate"]},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the cursor"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


@router.get(
    "/events",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {"schema": EVENT_SCHEMA}}},
        **error_responses(401, 422, 429, *UNAVAILABLE, challenge="always"),
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
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_BIGINT,
            description="start after this event id, as an EventSource reconnecting does",
        ),
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
        last_event_id=str(last_event_id) if last_event_id is not None else None,
    )
