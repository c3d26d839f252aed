"""Clients that send as a careful client does: every send carries an Idempotency-Key of
its own, and a send that gets no answer, a 503 or a 504 is sent again with the same key
after a backoff (at least its Retry-After), until it is answered 202 or its deadline
passes. Each sender sends one message at a time, so its messages to a receiver are
accepted in the order it sent them."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.api import User

RETRIED = {0, 502, 503, 504}  # 0: no answer (the connection failed or timed out)
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


@dataclass
class Send:
    """One message and every answer its attempts got."""

    key: str
    sender: int
    receiver: int
    content: str
    statuses: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    @property
    def acknowledged(self) -> int | None:
        """The id its 202s gave, if it got one."""
        return self.ids[0] if self.ids else None


@dataclass
class Ledger:
    """Every send of a load, in the order they were started."""

    sends: list[Send] = field(default_factory=list)

    def acknowledged(self) -> dict[int, Send]:
        return {send.ids[0]: send for send in self.sends if send.ids}

    def statuses(self) -> Counter[int]:
        return Counter(status for send in self.sends for status in send.statuses)


class RetryingLoad:
    """``people`` each sending to the others in turn, about ``rate`` messages a second
    each, in a thread of its own, until :meth:`stop`; every send is retried until it is
    answered (or ``deadline`` seconds pass)."""

    def __init__(
        self, gateway_url: str, people: list[User], *, rate: float = 16.0, deadline: float = 90.0
    ) -> None:
        self.url = gateway_url
        self.people = people
        self.interval = 1 / rate
        self.deadline = deadline
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> RetryingLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> Ledger:
        """Stop starting sends; wait until each started one is answered (or given up)."""
        self._stop.set()
        self._thread.join(self.deadline + 30)
        assert not self._thread.is_alive(), "a sender did not finish"
        return self.ledger

    def acknowledged_so_far(self) -> int:
        return sum(1 for send in self.ledger.sends if send.ids)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=len(self.people))
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as client:
            await asyncio.gather(*(self._sender(client, n) for n in range(len(self.people))))

    async def _sender(self, client: httpx.AsyncClient, number: int) -> None:
        author = self.people[number]
        others = [p for p in self.people if p is not author]
        count = 0
        while not self._stop.is_set():
            receiver = others[count % len(others)]
            send = Send(str(uuid.uuid4()), author.id, receiver.id, f"{author.id}:{count}")
            self.ledger.sends.append(send)
            started = time.monotonic()
            await self._deliver(client, author, send)
            count += 1
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _deliver(self, client: httpx.AsyncClient, author: User, send: Send) -> None:
        deadline = time.monotonic() + self.deadline
        backoff = FIRST_BACKOFF
        headers = {**author.headers, "Idempotency-Key": send.key}
        body = {"content": send.content, "receiver_id": send.receiver}
        while time.monotonic() < deadline:
            retry_after = 0.0
            try:
                response = await client.post("/send_message", json=body, headers=headers)
            except httpx.TransportError:
                send.statuses.append(0)
            else:
                send.statuses.append(response.status_code)
                if response.status_code == 202:
                    send.ids.append(response.json()["id"])
                    return
                if response.status_code not in RETRIED:
                    return
                retry_after = float(response.headers.get("retry-after", 0))
            await asyncio.sleep(max(retry_after, backoff * random.uniform(0.5, 1.5)))
            backoff = min(backoff * 2, MAX_BACKOFF)
