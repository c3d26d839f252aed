"""Forwarding event streams: each client stream is one request to message_service,
passed on event by event as it comes (never buffered), on connections of its own so
that streams never take the pooled connections ordinary requests use. A stream whose
session ends is cut at an event boundary and told to reauthenticate."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import aiohttp
from fastapi import Response
from prometheus_client import Gauge

from common.errors import ServiceUnavailable, UpstreamTimeout
from common.internal import INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, USER_ID_HEADER, request_id
from common.sse import EventStream, reauthenticate

# An upstream stream that sends nothing, not even a keep-alive, for this long is dead.
SILENT_UPSTREAM_SECONDS = 60.0
_REFUSAL_HEADERS = ("content-type", "retry-after")
SESSION_ENDED = "the session has ended: log in again"
OPEN_STREAMS = Gauge(
    "anonchat_open_event_streams", "Event streams (GET /events) this gateway is forwarding now."
)


@dataclass(eq=False)
class _Open:
    """One forwarded stream."""

    upstream: aiohttp.ClientResponse
    session_id: str | None
    ended: bool = False


class Streams:
    """Opens a stream at message_service for a client and hands it on."""

    def __init__(self, *, url: str, internal_token: str, connect_timeout: float) -> None:
        self.url = url.rstrip("/") + "/events"
        self.internal_token = internal_token
        self.session = aiohttp.ClientSession(
            # No pool limit: a stream holds its connection as long as its client stays.
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=SILENT_UPSTREAM_SECONDS
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        self._by_session: dict[str, set[_Open]] = {}

    async def close(self) -> None:
        await self.session.close()

    def end_session(self, session_id: str) -> None:
        """End the open streams of a session that has ended (they say why)."""
        for stream in self._by_session.pop(session_id, set()):
            stream.ended = True
            stream.upstream.close()

    async def open(
        self,
        *,
        user_id: int,
        session_id: str | None,
        until: float,
        params: Mapping[str, str],
        last_event_id: str | None,
    ) -> Response:
        """The client's stream; message_service's answer as it is when it refuses one."""
        headers = {
            INTERNAL_TOKEN_HEADER: self.internal_token,
            REQUEST_ID_HEADER: request_id.get(),
            USER_ID_HEADER: str(user_id),
            "x-stream-until": f"{until:.3f}",
        }
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        try:
            upstream = await self.session.get(self.url, params=params, headers=headers)
        except TimeoutError as exc:
            raise UpstreamTimeout("message_service did not answer in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailable("message_service is unavailable, try again shortly") from exc
        if upstream.status != 200:
            try:
                content = await upstream.read()
            finally:
                upstream.release()
            passed = {k: v for k, v in upstream.headers.items() if k.lower() in _REFUSAL_HEADERS}
            return Response(content, status_code=upstream.status, headers=passed)
        stream = _Open(upstream, session_id)
        if session_id is not None:
            self._by_session.setdefault(session_id, set()).add(stream)
        return EventStream(self._forward(stream), stop=upstream.close)

    async def _forward(self, stream: _Open) -> AsyncGenerator[bytes, None]:
        """The upstream's events as they come; the stream ends where the upstream's does
        (the client reconnects with its Last-Event-ID)."""
        OPEN_STREAMS.inc()
        try:
            while True:
                try:
                    event = await stream.upstream.content.readuntil(b"\n\n")
                except (aiohttp.ClientError, TimeoutError):
                    break
                if not event.endswith(b"\n\n"):
                    break
                yield event
            if stream.ended:
                yield reauthenticate(SESSION_ENDED)
        finally:
            OPEN_STREAMS.dec()
            stream.upstream.close()
            if stream.session_id is not None:
                mine = self._by_session.get(stream.session_id, set())
                mine.discard(stream)
                if not mine:
                    self._by_session.pop(stream.session_id, None)
