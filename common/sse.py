"""The Server-Sent Events that both ends of an event stream write themselves."""

from __future__ import annotations

import json

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def comment(text: str) -> bytes:
    """An SSE comment: ignored by clients, it keeps proxies from closing the stream."""
    return f": {text}\n\n".encode()


def reauthenticate(detail: str) -> bytes:
    """The last event of a stream whose access is over: the client renews its access
    token and reconnects with the id of the last event it got."""
    return f"event: reauthenticate\ndata: {json.dumps({'detail': detail})}\n\n".encode()
