"""Forwarding event streams: each client stream is one request to message_service,
passed on as it comes (never buffered), on connections of its own so that streams never
take the pooled connections ordinary requests use."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import aiohttp
from fastapi import Response
from starlette.responses import StreamingResponse

from common.errors import ServiceUnavailable, UpstreamTimeout
from common.internal import INTERNAL_TOKEN_HEADER, REQUEST_ID_HEADER, USER_ID_HEADER, request_id

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# An upstream stream that sends nothing, not even a keep-alive, for this long is dead.
SILENT_UPSTREAM_SECONDS = 60.0


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

    async def close(self) -> None:
        await self.session.close()

    async def open(
        self, *, user_id: int, until: float, params: Mapping[str, str], last_event_id: str | None
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
        return StreamingResponse(
            _forward(upstream), media_type="text/event-stream", headers=STREAM_HEADERS
        )


_REFUSAL_HEADERS = ("content-type", "retry-after")


async def _forward(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; the stream ends where the upstream's does (the
    client reconnects with its Last-Event-ID)."""
    try:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async for chunk in upstream.content.iter_any():
                yield chunk
    finally:
        upstream.close()
