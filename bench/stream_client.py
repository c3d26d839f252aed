"""Many event streams held open through the gateway, from a process of their own:
``python -m bench.stream_client GATEWAY_URL``, driven by the benchmark over stdin and
stdout (one JSON object a line each way). One asyncio loop with aiohttp holds thousands
of streams at little CPU, and on a core of its own when the scheduler lets it, rather
than in the loop of the process whose probe is being timed.

Commands, each answered once it is done:

- ``{"do": "register", "prefix": P, "count": N, "password": W}``: registers and logs in
  users ``P0`` .. ``P<N-1>``; answers ``{"users": [[id, token], ...]}``.
- ``{"do": "open", "group": G, "tokens": [...], "cursor": C}``: opens one stream per token
  (after cursor ``C``, or from the start if null) and waits until each has its first
  bytes, opening again those refused for want of time (``AGAIN``); answers
  ``{"refused": {status: count}, "open": {group: streams}}``, every refusal counted.
- ``{"do": "close", "group": G}``: closes that group's streams.
- ``{"do": "status"}``: ``{"open": {group: streams}, "events": N}``, the ``message``
  events read on every stream so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from typing import Any

import aiohttp

# Requests in flight at once while registering users and opening streams: enough to
# keep both servers busy, few enough that none waits a second for its connection.
CONCURRENCY = 16
EVENT = b"\nevent: message\n"
# A stream refused for want of time or of a server (0: no answer at all) is opened again
# after the stream's own retry interval, as an EventSource would.
AGAIN = {0, 502, 503, 504}
RETRY_SECONDS = 1.0
ATTEMPTS = 3


class Holder:
    """The open streams, by group, and the message events they have read."""

    def __init__(self, session: aiohttp.ClientSession, gateway: str) -> None:
        self.session = session
        self.gateway = gateway.rstrip("/")
        self.groups: dict[str, set[asyncio.Task[None]]] = {}
        self.events = 0

    def open_counts(self) -> dict[str, int]:
        return {
            group: sum(not task.done() for task in tasks) for group, tasks in self.groups.items()
        }

    async def register(self, prefix: str, count: int, password: str) -> list[list[Any]]:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(n: int) -> list[Any]:
            body = {"username": f"{prefix}{n}", "password": password}
            async with limit:
                async with self.session.post(f"{self.gateway}/register", json=body) as answer:
                    answer.raise_for_status()
                    user_id = (await answer.json())["id"]
                async with self.session.post(f"{self.gateway}/login", json=body) as answer:
                    answer.raise_for_status()
                    return [user_id, (await answer.json())["access_token"]]

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def open(self, group: str, tokens: list[str], cursor: int | None) -> dict[str, int]:
        """Open a stream per token; the statuses of the refusals, counted."""
        limit = asyncio.Semaphore(CONCURRENCY)
        params = {} if cursor is None else {"cursor": str(cursor)}
        tasks = self.groups.setdefault(group, set())

        async def one(token: str) -> list[int]:
            refused = []
            async with limit:
                for _ in range(ATTEMPTS):
                    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                    tasks.add(asyncio.create_task(self._hold(token, params, started)))
                    status = await started
                    if status == 200:
                        break
                    refused.append(status)
                    if status not in AGAIN:
                        break
                    await asyncio.sleep(RETRY_SECONDS)
            return refused

        refused = await asyncio.gather(*(one(token) for token in tokens))
        return dict(Counter(str(status) for statuses in refused for status in statuses))

    async def _hold(self, token: str, params: dict[str, str], started: asyncio.Future[int]) -> None:
        """One stream, read until it ends or is closed; ``started`` gets its status once
        its first bytes are in (or 0 if it could not be opened)."""
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self.session.get(
                f"{self.gateway}/events", params=params, headers=headers
            ) as answer:
                if answer.status != 200:
                    started.set_result(answer.status)
                    return
                # An event split across two reads is counted once: the end of the last
                # read is searched again with the next.
                tail = b""
                async for chunk in answer.content.iter_any():
                    if not started.done():
                        started.set_result(200)
                    seen = tail + chunk
                    self.events += seen.count(EVENT)
                    tail = seen[-len(EVENT) + 1 :]
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            if not started.done():
                started.set_result(0)

    async def close(self, group: str) -> None:
        tasks = self.groups.pop(group, set())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve(gateway: str) -> None:
    """Answer the benchmark's commands until its end of stdin closes."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        holder = Holder(session, gateway)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            answer: dict[str, Any] = {}
            match command["do"]:
                case "register":
                    answer["users"] = await holder.register(
                        command["prefix"], command["count"], command["password"]
                    )
                case "open":
                    answer["refused"] = await holder.open(
                        command["group"], command["tokens"], command["cursor"]
                    )
                case "close":
                    await holder.close(command["group"])
                case "status":
                    answer["events"] = holder.events
            answer["open"] = holder.open_counts()
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
        for group in list(holder.groups):
            await holder.close(group)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sys.argv[1]))
