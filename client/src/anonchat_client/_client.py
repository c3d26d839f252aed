"""``Client``: the blocking client. Every operation is ``anonchat_client._core``'s; this
class only carries its effects out with blocking I/O (``AsyncClient`` awaits them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent

from anonchat_client import _effects as effects
from anonchat_client._core import ClientBase
from anonchat_client._effects import Op, Run
from anonchat_client._models import Block, Conversation, Event, Me, Message, Sent, Session, User

T = TypeVar("T")


class _Stream:
    """The event stream an iteration has open."""

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.events: Iterator[ServerSentEvent] = iter(())

    def open(self, response: httpx.Response) -> None:
        self.response, self.events = response, EventSource(response).iter_sse()

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
        self.response, self.events = None, iter(())


class Client(ClientBase[httpx.BaseTransport]):
    """A client of one anonchat server, through its gateway.

    It keeps the session in ``store`` (in memory unless given one, such as
    :class:`~anonchat_client.sessions.CredentialsFile`), refreshes the access token by
    itself, and retries what is safe to retry (reads, and sends, which carry an
    ``Idempotency-Key``) on connection failures, 429 and 503, honouring ``Retry-After``,
    for up to ``retry_deadline`` seconds. Errors are :class:`AnonchatError` subclasses.
    Safe to share between threads."""

    def _connect(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(transport=transport)
        self._renewing = threading.Lock()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *failure: object) -> None:
        self.close()

    def register(self, username: str, password: str) -> User:
        """Register a new user (it does not log in)."""
        return self._run(self._core.register(username, password))

    def login(self, username: str, password: str) -> Session:
        """Log in; the session is kept for every later call."""
        return self._run(self._core.login(username, password))

    def logout(self) -> None:
        """End the session at the server and forget it."""
        self._run(self._core.logout())

    def change_password(self, old: str, new: str) -> None:
        """Change the password (the old one is asked); every other session of the user ends."""
        self._run(self._core.change_password(old, new))

    def users(self, *, page_size: int = 100) -> Iterator[User]:
        """Everyone registered, in id order, page after page."""
        return self._iterate(self._core.users(page_size))

    def user(self, username: str) -> User:
        """The user of that name (any letter case); :class:`NotFound` if none."""
        return self._run(self._core.user(username))

    def user_by_id(self, user_id: int) -> User:
        """The user of that id; :class:`NotFound` if none."""
        return self._run(self._core.user_by_id(user_id))

    def find_user(self, user: int | str) -> User | None:
        """The user of that id or name; ``None`` if there is none: never registered, or
        an account that was erased (show it as a deleted account)."""
        return self._run(self._core.find_user(user))

    def send(
        self, to: int | str, content: str, *, deadline: float | None = None, key: str | None = None
    ) -> Sent:
        """Send ``content`` to a user (an id, or a name), retrying with the same
        ``Idempotency-Key`` for up to ``deadline`` seconds: stored once however often it
        is sent. The message is queued when this returns. ``key`` is the
        Idempotency-Key (a new one if ``None``): give the same one to repeat a send.
        :class:`Conflict` if the caller blocks the receiver."""
        return self._run(self._core.send(to, content, deadline=deadline, key=key))

    def messages(
        self,
        with_user: int | str | None = None,
        *,
        after: int | None = None,
        before: int | None = None,
        newest_first: bool = False,
        page_size: int = 100,
    ) -> Iterator[Message]:
        """The caller's messages (with one user, if given), page after page: oldest first,
        after the cursor ``after``; or, with ``newest_first``, from the newest back (the
        last ten are the first ten, and only their pages are read); ``before`` reads
        back, newest first, from just before that cursor."""
        op = self._core.messages(
            with_user, after=after, before=before, newest_first=newest_first, page_size=page_size
        )
        return self._iterate(op)

    def message(self, message_id: int) -> Message:
        """One message of the caller's, with its ``status``."""
        return self._run(self._core.message(message_id))

    def delete_message(self, message_id: int) -> None:
        """Delete a message the caller sent, for both sides (stored or still queued);
        :class:`Forbidden` for its receiver, :class:`NotFound` for anyone else."""
        self._run(self._core.delete_message(message_id))

    def block(self, user: int | str) -> None:
        """Block a user (an id, or a name): what they send from now on never reaches the
        caller, and the caller cannot send to them."""
        self._run(self._core.block(user))

    def unblock(self, user: int | str) -> None:
        """Unblock a user; what they sent meanwhile stays unseen."""
        self._run(self._core.unblock(user))

    def blocks(self) -> list[Block]:
        """Whom the caller blocks, oldest block first."""
        return self._run(self._core.blocks())

    def me(self) -> Me:
        """The caller's account and preferences."""
        return self._run(self._core.me())

    def set_read_receipts(self, on: bool) -> Me:
        """Send read receipts, and so see them (both sides need them on), or stop."""
        return self._run(self._core.set_read_receipts(on))

    def delete_account(self, password: str) -> None:
        """Erase the caller's account (the password is asked once more): every session
        ends, every message it sent is deleted for both sides. The session is forgotten.
        :class:`Unauthorized` for a wrong password."""
        self._run(self._core.delete_account(password))

    def mark_read(self, with_user: int | str, up_to: int) -> None:
        """The caller has read its conversation with a user up to the cursor ``up_to``
        (its unread counts follow; with read receipts on, the other side is told)."""
        self._run(self._core.mark_read(with_user, up_to))

    def conversations(self, *, limit: int = 100) -> list[Conversation]:
        """The caller's conversations, the latest first, with their unread counts."""
        return self._run(self._core.conversations(limit))

    def events(self, cursor: int | None = None) -> Iterator[Event]:
        """The caller's events after ``cursor`` (from the beginning if ``None``), then
        live, for ever: :class:`MessageEvent`, :class:`FailedEvent`,
        :class:`DeletedEvent`, :class:`ReadEvent` (else :class:`OtherEvent`). The stream
        is resumed after the last event whenever it ends or fails (backing off up to
        30 s), and no event is handed on twice."""
        return self._iterate(self._core.events(cursor))

    def _run(self, op: Op[T]) -> T:
        run = Run(op)
        for _ in self._drive(run):
            pass
        value: T = run.value
        return value

    def _iterate(self, op: Op[None]) -> Iterator[Any]:
        yield from self._drive(Run(op))

    def _drive(self, run: Run) -> Iterator[Any]:
        stream = _Stream()
        try:
            while run.effect is not None:
                if isinstance(run.effect, effects.Emit):
                    item = run.effect.item
                    yield item
                    run.resume()
                else:
                    run.resume(*self._perform(run.effect, stream))
        finally:
            stream.close()
            run.close()

    def _perform(self, effect: effects.Effect, stream: _Stream) -> tuple[object, Exception | None]:
        result: object = None
        try:
            if isinstance(effect, effects.Call):
                result = self._send(effect, stream)
            elif isinstance(effect, effects.Pause):
                time.sleep(effect.seconds)
            elif isinstance(effect, effects.Renew):
                with self._renewing:
                    self._run(self._core.renew(effect.stale))
            elif isinstance(effect, effects.NextEvent):
                result = next(stream.events, None)
            elif isinstance(effect, effects.CloseStream):
                stream.close()
        except Exception as exc:
            return None, exc
        return result, None

    def _send(self, call: effects.Call, stream: _Stream) -> httpx.Response:
        response = self._http.send(call.request, stream=call.stream)
        if not call.stream:
            return response
        if response.is_success:
            stream.open(response)
        else:
            # A refusal: its body says why.
            response.read()
            response.close()
        return response
