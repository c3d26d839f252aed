"""What the client's tests share: accounts, and ``Either``, one face for both clients."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from anonchat_client import AsyncClient, Client, User

# A test waits this long at most for what it reads (events, a stored message).
WAIT = 20.0


@dataclass
class Account:
    user: User
    password: str

    @property
    def name(self) -> str:
        return self.user.username


def server_has(server: str, path: str) -> bool:
    """Whether the server's OpenAPI document has ``path`` (endpoints still being added
    are tested where they exist)."""
    paths = httpx.get(f"{server}/openapi.json", timeout=10).json()["paths"]
    return path in paths


def requires(server: str, path: str) -> None:
    if not server_has(server, path):
        pytest.skip(f"{path} is not on this server yet")


class Either:
    """A ``Client`` or an ``AsyncClient`` behind one awaitable face, so that a test runs
    the same against both. ``run`` calls a method; ``take`` reads up to ``count`` items
    of an iterator (all of them if ``None``)."""

    def __init__(self, kind: str, server: str, **options: Any) -> None:
        self.kind = kind
        self.sync = Client(server, **options) if kind == "sync" else None
        self.async_ = AsyncClient(server, **options) if kind == "async" else None

    @property
    def client(self) -> Client | AsyncClient:
        client = self.sync or self.async_
        assert client is not None
        return client

    async def run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.sync is not None:
            call = getattr(self.sync, method)
            return await asyncio.wait_for(asyncio.to_thread(call, *args, **kwargs), WAIT)
        return await asyncio.wait_for(getattr(self.async_, method)(*args, **kwargs), WAIT)

    async def take(self, method: str, count: int | None, *args: Any, **kwargs: Any) -> list[Any]:
        if self.sync is not None:
            items: Iterator[Any] = getattr(self.sync, method)(*args, **kwargs)
            return await asyncio.wait_for(
                asyncio.to_thread(lambda: list(itertools.islice(items, count))), WAIT
            )
        return await asyncio.wait_for(self._take_async(method, count, *args, **kwargs), WAIT)

    async def _take_async(self, method: str, count: int | None, *args: Any, **kwargs: Any):
        found: list[Any] = []
        if count == 0:
            return found
        items: AsyncIterator[Any] = getattr(self.async_, method)(*args, **kwargs)
        try:
            async for item in items:
                found.append(item)
                if count is not None and len(found) >= count:
                    break
        finally:
            await items.aclose()  # type: ignore[attr-defined]
        return found

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.async_ is not None:
            await self.async_.aclose()
