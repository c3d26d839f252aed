"""Every method of the library against the real stack through the gateway, once with
``Client`` and once with ``AsyncClient`` (the ``connect`` fixture)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest

from anonchat_client import (
    Client,
    Conflict,
    InvalidInput,
    Message,
    MessageEvent,
    NotFound,
    SessionExpired,
    Unauthorized,
)
from client.tests.support import WAIT, requires, server_has
from tests.api import unique_name

GREETING = "Привет, Bob! 👋 日本語"


async def eventually_persisted(either, message_id: int) -> Message:
    deadline = time.monotonic() + WAIT
    while True:
        message: Message = await either.run("message", message_id)
        if message.status == "persisted" or time.monotonic() > deadline:
            return message
        await asyncio.sleep(0.05)


async def test_register_and_login(connect):
    either = connect()
    name = unique_name("c")
    user = await either.run("register", name, "correct horse battery")
    assert user.username == name
    assert user.id > 0
    assert either.client.session is None  # registering does not log in
    session = await either.run("login", name.upper(), "correct horse battery")
    assert session.access_token
    assert session.expires_at > time.time() + 60
    assert either.client.session == session
    # Before sessions land, the login answer has no refresh token.
    if not server_has(either.client.server.rstrip("/"), "/token/refresh"):
        assert session.refresh_token is None


async def test_refusals_are_typed_errors_with_the_servers_code(connect, account):
    either = connect()
    taken = account()
    with pytest.raises(Conflict) as conflict:
        await either.run("register", taken.name.upper(), "correct horse battery")
    assert conflict.value.status == 409
    assert conflict.value.code == "conflict"
    with pytest.raises(InvalidInput) as invalid:
        await either.run("register", "no spaces allowed", "correct horse battery")
    assert invalid.value.code == "invalid_input"
    assert [error.field for error in invalid.value.errors] == ["username"]
    with pytest.raises(Unauthorized) as wrong:
        await either.run("login", taken.name, "not the password")
    assert not isinstance(wrong.value, SessionExpired)
    assert wrong.value.code == "unauthorized"
    assert "wrong username or password" in wrong.value.detail


async def test_calls_need_a_login(connect):
    either = connect()
    with pytest.raises(SessionExpired) as error:
        await either.take("users", None)
    assert error.value.code == "not_logged_in"


async def test_users_pages_through_everyone(logged_in, account):
    either, me = await logged_in()
    others = [account() for _ in range(3)]
    users = await either.take("users", None, page_size=2)
    ids = [user.id for user in users]
    assert ids == sorted(set(ids))
    assert {me.user, *(other.user for other in others)} <= set(users)


async def test_send_then_read_the_conversation_page_by_page(logged_in, account, server):
    alice, _ = await logged_in()
    bob = account()
    contents = [f"{GREETING} {n}" for n in range(5)]
    sent = [await alice.run("send", bob.user.id, content) for content in contents]
    assert [s.status for s in sent] == ["queued"] * 5
    assert all(s.receiver_id == bob.user.id and not s.replayed for s in sent)
    stored = await eventually_persisted(alice, sent[-1].id)
    assert stored.status == "persisted"
    assert stored.content == contents[-1]
    assert stored.cursor is not None

    messages = await alice.take("messages", None, bob.user.id, page_size=2)
    assert [m.content for m in messages] == contents
    assert [m.id for m in messages] == [s.id for s in sent]
    after = await alice.take("messages", None, bob.user.id, after=messages[2].cursor)
    assert [m.content for m in after] == contents[3:]


async def test_unknown_receiver_bad_content_and_unknown_message(logged_in):
    either, _ = await logged_in()
    with pytest.raises(NotFound) as unknown:
        await either.run("send", 2**62, "hello")
    assert unknown.value.code == "not_found"
    with pytest.raises(InvalidInput):
        await either.run("send", 1, "   ")
    with pytest.raises(NotFound):
        await either.run("message", 2**62)


async def test_a_send_whose_answer_is_lost_is_stored_once(server, account):
    """The first answer is lost on the way back: the retry carries the same key, so the
    server answers it with the first answer instead of storing the message again."""
    alice, bob = account(), account()

    class LoseFirstAnswer(httpx.HTTPTransport):
        lost = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.url.path == "/send_message" and not self.lost:
                self.lost += 1
                response.close()
                raise httpx.ReadError("connection reset", request=request)
            return response

    transport = LoseFirstAnswer()
    with Client(server, transport=transport) as client:
        client.login(alice.name, alice.password)
        sent = client.send(bob.user.id, "only once")
        assert transport.lost == 1
        assert sent.replayed
        messages = list(client.messages(bob.user.id))
    assert [(m.id, m.content) for m in messages] == [(sent.id, "only once")]


async def test_events_then_resume_after_a_cursor(logged_in, account):
    alice, _ = await logged_in()
    bob, bob_account = await logged_in()
    sent = [await alice.run("send", bob_account.user.id, f"event {n}") for n in range(3)]
    events = await bob.take("events", 3)
    assert all(isinstance(event, MessageEvent) for event in events)
    assert [event.message.id for event in events] == [s.id for s in sent]
    cursors = [event.cursor for event in events]
    assert cursors == sorted(cursors) == [event.message.cursor for event in events]
    assert events[0].message.content == "event 0"
    resumed = await bob.take("events", 1, cursor=cursors[1])
    assert [event.message.id for event in resumed] == [sent[2].id]


async def test_logout_forgets_the_session(logged_in):
    either, _ = await logged_in()
    session = either.client.session
    await either.run("logout")
    assert either.client.session is None
    with pytest.raises(SessionExpired):
        await either.run("message", 1)
    if server_has(either.client.server.rstrip("/"), "/logout"):
        # The server ended it too: its token is refused (within a second, by contract).
        with Client(either.client.server, session=session) as old:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    old.message(1)
                except SessionExpired:
                    break
                except NotFound:
                    time.sleep(0.1)
            else:
                pytest.fail("the token still works after logout")


async def test_user_by_name_and_by_id(logged_in, account, server):
    requires(server, "/users/by-name/{username}")
    requires(server, "/users/{id}")
    either, _ = await logged_in()
    bob = account()
    assert await either.run("user", bob.name.upper()) == bob.user
    assert await either.run("user_by_id", bob.user.id) == bob.user
    with pytest.raises(NotFound):
        await either.run("user", unique_name("nobody"))
    with pytest.raises(NotFound):
        await either.run("user_by_id", 2**62)
    sent = await either.run("send", bob.name, "by name")
    assert sent.receiver_id == bob.user.id


async def test_the_access_token_is_refreshed_by_itself(logged_in, server):
    requires(server, "/token/refresh")
    either, _ = await logged_in()
    first = either.client.session
    assert first.refresh_token
    # About to expire: the next call refreshes it first.
    either.client.use_session(replace(first, expires_at=time.time() + 1))
    await either.take("users", 1)
    second = either.client.session
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    # A token the server refuses: refreshed once, and the call retried.
    either.client.use_session(replace(second, access_token="not-a-token"))
    await either.take("users", 1)
    assert either.client.session.refresh_token != second.refresh_token


async def test_change_password_ends_the_other_sessions(logged_in, connect, server):
    requires(server, "/password")
    either, me = await logged_in()
    other = connect()
    await other.run("login", me.name, me.password)
    with pytest.raises(Unauthorized) as wrong:
        await either.run("change_password", "not the password", "a new password 1")
    assert not isinstance(wrong.value, SessionExpired)
    await either.run("change_password", me.password, "a new password 1")
    await either.take("users", 1)  # this session goes on
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            await other.take("users", 1)
        except SessionExpired:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the other session still works after a password change")
    with pytest.raises(Unauthorized):
        await connect().run("login", me.name, me.password)
    await connect().run("login", me.name, "a new password 1")
