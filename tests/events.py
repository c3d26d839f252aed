"""Reading the event stream as a client does: Server-Sent Events, resumed with
Last-Event-ID whenever the stream ends or the connection fails."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.api import eventually

# The test stacks send a keep-alive every second, so a read that waits longer is stuck.
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Event:
    """One event of the stream."""

    id: str | None
    name: str
    data: Any


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """The events in a stream's lines (comments and ``retry`` skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield Event(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def read_some(
    gateway_url: str, headers: dict[str, str], count: int, *, timeout: float = 10.0, **params: str
) -> list[Event]:
    """Open a stream, read ``count`` events, close it."""
    events: list[Event] = []
    with (
        httpx.Client(base_url=gateway_url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", "/events", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        deadline = time.monotonic() + timeout
        for event in parse(response.iter_lines()):
            events.append(event)
            if len(events) >= count or time.monotonic() > deadline:
                break
    return events


@dataclass(eq=False)
class Follower(threading.Thread):
    """A client following a user's stream in a thread of its own, reconnecting with the
    id of the last event it got whenever the stream ends or fails (as EventSource does)."""

    gateway_url: str
    headers: dict[str, str]
    user_id: int = 0
    events: list[Event] = field(default_factory=list)
    connections: int = 0
    refusals: list[int] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    @property
    def last_id(self) -> str | None:
        return next((e.id for e in reversed(self.events) if e.id is not None), None)

    def messages(self) -> list[dict[str, Any]]:
        return [event.data for event in self.events if event.name == "message"]

    def run(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=READ_TIMEOUT) as client:
            while not self.stopped.is_set():
                headers = dict(self.headers)
                if self.last_id is not None:
                    headers["Last-Event-ID"] = self.last_id
                try:
                    with client.stream("GET", "/events", headers=headers) as response:
                        if response.status_code != 200:
                            self.refusals.append(response.status_code)
                            time.sleep(0.2)
                            continue
                        self.connections += 1
                        # Keep-alives come each second: a stop is seen within one.
                        lines = itertools.takewhile(
                            lambda _: not self.stopped.is_set(), response.iter_lines()
                        )
                        for event in parse(lines):
                            self.events.append(event)
                except httpx.HTTPError:
                    time.sleep(0.2)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The messages once there are at least ``count``."""

        def enough() -> list[dict[str, Any]] | None:
            messages = self.messages()
            return messages if len(messages) >= count else None

        return eventually(enough, timeout=timeout)

    def stop(self) -> None:
        self.stopped.set()
        self.join(READ_TIMEOUT + 5)
