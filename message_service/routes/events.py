"""The event stream (called by the gateway on a user's behalf, forwarded as it comes)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Header, Query

from common.errors import FieldError, InvalidInput, error_responses
from common.schemas import MAX_BIGINT
from common.sse import EventStream
from message_service.deps import CallerDep, ServiceDep
from message_service.stream import events

router = APIRouter(tags=["events"])


def resume_cursor(last_event_id: str | None, cursor: int | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` (what a reconnecting EventSource
    sends), else after ``cursor``, else from the beginning."""
    if last_event_id is None:
        return cursor or 0
    if not last_event_id.isdigit() or int(last_event_id) > MAX_BIGINT:
        problem = "must be a cursor (the id of an event)"
        raise InvalidInput(
            f"Last-Event-ID: {problem}", errors=[FieldError(field="Last-Event-ID", message=problem)]
        )
    return int(last_event_id)


@router.get("/events", responses=error_responses(401, 422, 429, 503))
async def stream(
    caller: CallerDep,
    service: ServiceDep,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    x_stream_until: Annotated[float | None, Header(include_in_schema=False)] = None,
) -> EventStream:
    """Server-Sent Events: the caller's messages as they are stored, after a cursor."""
    hub = service.hub
    opened = hub.open(caller, resume_cursor(last_event_id, cursor), x_stream_until or math.inf)
    try:
        # Read before answering: a database that does not answer is a 503, not a stream
        # that ends at once.
        first = await hub.missed(opened)
    except BaseException:
        hub.close(opened)
        raise
    return EventStream(events(hub, opened, first), stop=opened.stop)
