"""``AsyncClient``: the asyncio client, with ``Client``'s methods awaited. Every
operation is ``anonchat_client._core``'s; this class only awaits its effects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent

from anonchat_client import _effects as effects
from anonchat_client._core import ClientBase
from anonchat_client._effects import Op, Run
from anonchat_client._models import Block, Conversation, Event, Me, Message, Sent, Session, User

T = TypeVar("T")


async def _no_events() -> AsyncGenerator[ServerSentEvent, None]:
    none: tuple[ServerSentEvent, ...] = ()
    for event in none:
        yield event


class _AsyncStream:
    """The event stream an iteration has open."""

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.events: AsyncGenerator[ServerSentEvent, None] = _no_events()

    def open(self, response: httpx.Response) -> None:
        self.response, self.events = response, EventSource(response).aiter_sse()

    async def close(self) -> None:
        await self.events.aclose()
        if self.response is not None:
            await self.response.aclose()
        self.response, self.events = None, _no_events()


class AsyncClient(ClientBase[httpx.AsyncBaseTransport]):
    """The asyncio twin of :class:`~anonchat_client.Client`: the same methods, the same
    behaviour (they are one implementation), awaited; its iterators are async."""

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(transport=transport)
        self._renewing = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *failure: object) -> None:
        await self.aclose()

    async def register(self, username: str, password: str) -> User:
        """See :meth:`Client.register`."""
        return await self._run(self._core.register(username, password))

    async def login(self, username: str, password: str) -> Session:
        """See :meth:`Client.login`."""
        return await self._run(self._core.login(username, password))

    async def logout(self) -> None:
        """See :meth:`Client.logout`."""
        await self._run(self._core.logout())

    async def change_password(self, old: str, new: str) -> None:
        """See :meth:`Client.change_password`."""
        await self._run(self._core.change_password(old, new))

    def users(self, *, page_size: int = 100) -> AsyncIterator[User]:
        """See :meth:`Client.users`."""
        return self._drive(Run(self._core.users(page_size)))

    async def user(self, username: str) -> User:
        """See :meth:`Client.user`."""
        return await self._run(self._core.user(username))

    async def user_by_id(self, user_id: int) -> User:
        """See :meth:`Client.user_by_id`."""
        return await self._run(self._core.user_by_id(user_id))

    async def send(
        self, to: int | str, content: str, *, deadline: float | None = None, key: str | None = None
    ) -> Sent:
        """See :meth:`Client.send`."""
        op = self._core.send(to, content, deadline=deadline, key=key)
        return await self._run(op)

    async def find_user(self, user: int | str) -> User | None:
        """See :meth:`Client.find_user`."""
        return await self._run(self._core.find_user(user))

    def messages(
        self,
        with_user: int | str | None = None,
        *,
        after: int | None = None,
        before: int | None = None,
        newest_first: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[Message]:
        """See :meth:`Client.messages`."""
        op = self._core.messages(
            with_user, after=after, before=before, newest_first=newest_first, page_size=page_size
        )
        return self._drive(Run(op))

    async def message(self, message_id: int) -> Message:
        """See :meth:`Client.message`."""
        return await self._run(self._core.message(message_id))

    async def delete_message(self, message_id: int) -> None:
        """See :meth:`Client.delete_message`."""
        await self._run(self._core.delete_message(message_id))

    async def block(self, user: int | str) -> None:
        """See :meth:`Client.block`."""
        await self._run(self._core.block(user))

    async def unblock(self, user: int | str) -> None:
        """See :meth:`Client.unblock`."""
        await self._run(self._core.unblock(user))

    async def blocks(self) -> list[Block]:
        """See :meth:`Client.blocks`."""
        return await self._run(self._core.blocks())

    async def me(self) -> Me:
        """See :meth:`Client.me`."""
        return await self._run(self._core.me())

    async def set_read_receipts(self, on: bool) -> Me:
        """See :meth:`Client.set_read_receipts`."""
        return await self._run(self._core.set_read_receipts(on))

    async def delete_account(self, password: str) -> None:
        """See :meth:`Client.delete_account`."""
        await self._run(self._core.delete_account(password))

    async def mark_read(self, with_user: int | str, up_to: int) -> None:
        """See :meth:`Client.mark_read`."""
        await self._run(self._core.mark_read(with_user, up_to))

    async def conversations(self, *, limit: int = 100) -> list[Conversation]:
        """See :meth:`Client.conversations`."""
        return await self._run(self._core.conversations(limit))

    def events(self, cursor: int | None = None) -> AsyncIterator[Event]:
        """See :meth:`Client.events`."""
        return self._drive(Run(self._core.events(cursor)))

    async def _run(self, op: Op[T]) -> T:
        run = Run(op)
        async for _ in self._drive(run):
            pass
        value: T = run.value
        return value

    async def _drive(self, run: Run) -> AsyncIterator[Any]:
        stream = _AsyncStream()
        try:
            while run.effect is not None:
                if not isinstance(run.effect, effects.Emit):
                    run.resume(*(await self._perform(run.effect, stream)))
                    continue
                yield run.effect.item
                run.resume()
        finally:
            await stream.close()
            run.close()

    async def _perform(
        self, effect: effects.Effect, stream: _AsyncStream
    ) -> tuple[object, Exception | None]:
        try:
            if isinstance(effect, effects.Call):
                return await self._send(effect, stream), None
            if isinstance(effect, effects.Pause):
                await asyncio.sleep(effect.seconds)
            elif isinstance(effect, effects.Renew):
                async with self._renewing:
                    await self._run(self._core.renew(effect.stale))
            elif isinstance(effect, effects.NextEvent):
                return await anext(stream.events, None), None
            elif isinstance(effect, effects.CloseStream):
                await stream.close()
        except Exception as exc:
            return None, exc
        return None, None

    async def _send(self, call: effects.Call, stream: _AsyncStream) -> httpx.Response:
        response = await self._http.send(call.request, stream=call.stream)
        if call.stream and response.is_success:
            stream.open(response)
        elif call.stream:
            # A refusal: its body says why.
            await response.aread()
            await response.aclose()
        return response
