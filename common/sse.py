"""Event streams (Server-Sent Events): the events both ends write themselves, and how a
stream's body is sent.

A stream lasts hours, the request that opens it milliseconds. An :class:`EventStream`
answer sends its head through every layer of the app, as any answer does (security
headers, request id, metrics, error handling), and hands its body to
:class:`StreamHandoff`, the app's outermost layer, which sends it once the layers inside
have returned: an open stream holds none of their frames, exit stacks and task groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable

from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# Where the outermost layer collects the bodies handed to it, in each request's scope.
_HANDED = "anonchat.streams"
# Where it leaves, in the server's scope of the request, how to end the stream it sends
# (common.serving ends it when the server stops).
STOP_STREAM = "anonchat.stop_stream"


def comment(text: str) -> bytes:
    """An SSE comment: ignored by clients, it keeps proxies from closing the stream."""
    return f": {text}\n\n".encode()


def reauthenticate(detail: str) -> bytes:
    """The last event of a stream whose access is over: the client renews its access
    token and reconnects with the id of the last event it got."""
    return f"event: reauthenticate\ndata: {json.dumps({'detail': detail})}\n\n".encode()


class EventStream(StreamingResponse):
    """A ``text/event-stream`` answer whose body, ``events``, :class:`StreamHandoff`
    sends. ``stop`` makes ``events`` end soon: it is called when the client goes away,
    which ``events`` would not notice while it waits for the next one."""

    def __init__(self, events: AsyncGenerator[bytes, None], *, stop: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=STREAM_HEADERS)
        self.events = events
        self.stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        scope[_HANDED].append((self.events, self.stop))


async def _send_body(
    events: AsyncGenerator[bytes, None], stop: Callable[[], None], receive: Receive, send: Send
) -> None:
    """Send ``events`` as they come, until they end or the client goes away."""

    async def stop_on_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stop()

    listener = asyncio.create_task(stop_on_disconnect())
    try:
        async with contextlib.aclosing(events):
            async for chunk in events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        listener.cancel()


class StreamHandoff:
    """The outermost layer of an app that answers with :class:`EventStream`: sends the
    bodies of the streams opened inside, once every layer inside has returned. The
    layers inside get a copy of the scope, so that what they keep in it (the route,
    the request's exit stacks) goes when they return."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handed: list[tuple[AsyncGenerator[bytes, None], Callable[[], None]]] = []
        await self.app({**scope, _HANDED: handed}, receive, send)
        for events, stop in handed:
            scope[STOP_STREAM] = stop
            await _send_body(events, stop, receive, send)
