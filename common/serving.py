"""uvicorn's HTTP protocol with the deadlines it lacks, for every anonchat server:
``uvicorn ... --http common.serving:GuardedHttpProtocol``.

uvicorn has no timeout on reading a request's headers and body, so a client that sends
part of its headers and then nothing holds its connection (and a file descriptor) for
ever; and it waits without end for a client that stops reading a response, so a stream
whose reader stalled holds its buffers. This protocol closes a connection whose request
is not in within ``request_timeout``, and aborts one whose writes have been paused (the
client reads nothing) for ``write_stall_timeout``; an aborted stream's handler sees the
disconnect and lets go of everything it held.

A stopping uvicorn waits for every response to end, and an event stream never ends on
its own: when the server stops, this protocol ends the stream its connection sends (at
an event boundary), so that the server exits at once and the client reconnects, to
another replica, with its ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.sse import STOP_STREAM


class ServingSettings(BaseSettings):
    """The deadlines every anonchat server enforces, from ANONCHAT_SERVER_* variables."""

    model_config = SettingsConfigDict(env_prefix="ANONCHAT_SERVER_", extra="ignore")

    # From a request's first byte to its last (headers and body).
    request_timeout_seconds: float = Field(10.0, gt=0)
    # How long a client may read nothing of a response before it is cut off.
    write_stall_timeout_seconds: float = Field(30.0, gt=0)


@lru_cache
def serving_settings() -> ServingSettings:
    """The deadlines of this process, read once."""
    return ServingSettings()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a request deadline and a write-stall deadline."""

    _request_timer: asyncio.TimerHandle | None = None
    _stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_request_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_request_timer()

    def on_message_complete(self) -> None:
        self._cancel(self._request_timer)
        self._request_timer = None
        super().on_message_complete()

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            stop: Callable[[], None] | None = cast("dict[str, Any]", cycle.scope).get(STOP_STREAM)
            if stop is not None:
                stop()
        super().shutdown()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            delay = serving_settings().write_stall_timeout_seconds
            self._stall_timer = self.loop.call_later(delay, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel(self._stall_timer)
        self._stall_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._request_timer)
        self._cancel(self._stall_timer)
        super().connection_lost(exc)

    def _arm_request_timer(self) -> None:
        if self._request_timer is None:
            delay = serving_settings().request_timeout_seconds
            self._request_timer = self.loop.call_later(delay, self._too_slow)

    def _too_slow(self) -> None:
        self._request_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _stalled(self) -> None:
        self._stall_timer = None
        # abort, not close: close would wait to write what the client does not read.
        self.transport.abort()

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
