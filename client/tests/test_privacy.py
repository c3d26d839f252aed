"""The privacy controls through the library, against the real stack, with ``Client`` and
with ``AsyncClient``: deleting a message, blocking, read receipts, conversations, reading
back from the newest, and erasing the account."""

from __future__ import annotations

import asyncio
import time

import pytest

from anonchat_client import (
    Block,
    Conflict,
    Conversation,
    DeletedEvent,
    Forbidden,
    Me,
    Message,
    NotFound,
    ReadEvent,
    SessionExpired,
    Unauthorized,
)
from client.tests.support import WAIT
from client.tests.test_library import eventually_persisted
from tests.api import unique_name


async def stored(either, to: int, content: str) -> Message:
    """Send ``content`` and wait until a worker stored it."""
    sent = await either.run("send", to, content)
    message = await eventually_persisted(either, sent.id)
    assert message.status == "persisted", message
    return message


async def test_reading_back_from_the_newest_reads_only_the_last_pages(logged_in, account):
    alice, _ = await logged_in()
    bob = account()
    messages = [await stored(alice, bob.user.id, f"number {n}") for n in range(5)]
    last_three = await alice.take("messages", 3, bob.user.id, newest_first=True, page_size=2)
    assert [m.content for m in last_three] == ["number 4", "number 3", "number 2"]
    older = await alice.take("messages", None, bob.name, before=messages[2].cursor, page_size=2)
    assert [m.content for m in older] == ["number 1", "number 0"]
    with pytest.raises(ValueError, match="not both"):
        await alice.take("messages", None, bob.user.id, after=1, newest_first=True)


async def test_a_deleted_message_is_gone_for_both_and_the_stream_says_so(logged_in, account):
    alice, me = await logged_in()
    bob, bob_account = await logged_in()
    carol, _ = await logged_in()
    message = await stored(alice, bob_account.user.id, "take this back")
    with pytest.raises(Forbidden) as receiver:
        await bob.run("delete_message", message.id)
    assert receiver.value.status == 403
    with pytest.raises(NotFound):
        await carol.run("delete_message", message.id)

    await alice.run("delete_message", message.id)
    for side in (alice, bob):
        with pytest.raises(NotFound):
            await side.run("message", message.id)
    assert await bob.take("messages", None, me.user.id) == []
    [deleted] = await bob.take("events", 1, cursor=message.cursor)
    assert isinstance(deleted, DeletedEvent)
    assert (deleted.id, deleted.sender_id, deleted.receiver_id) == (
        message.id,
        me.user.id,
        bob_account.user.id,
    )
    assert message.cursor is not None
    assert deleted.cursor is not None
    assert deleted.cursor > message.cursor
    with pytest.raises(NotFound):
        await alice.run("delete_message", message.id)


async def test_a_blocker_never_sees_the_blocked_and_cannot_send_to_them(logged_in, account):
    alice, alice_account = await logged_in()
    bob, bob_account = await logged_in()
    await bob.run("block", alice_account.name)
    [block] = await bob.run("blocks")
    assert isinstance(block, Block)
    assert block.user_id == alice_account.user.id

    unseen = await stored(alice, bob_account.user.id, "you will not see this")
    with pytest.raises(NotFound):
        await bob.run("message", unseen.id)
    assert await bob.take("messages", None, alice_account.user.id) == []
    with pytest.raises(Conflict) as refused:
        await bob.run("send", alice_account.user.id, "hello?")
    assert refused.value.status == 409
    assert "unblock" in refused.value.detail
    with pytest.raises(NotFound):
        await bob.run("block", unique_name("nobody"))
    with pytest.raises(NotFound):
        await bob.run("block", 2**62)

    await bob.run("unblock", alice_account.user.id)
    assert await bob.run("blocks") == []
    seen = await stored(alice, bob_account.user.id, "and now you do")
    assert [m.id for m in await bob.take("messages", None, alice_account.name)] == [seen.id]
    await bob.run("send", alice_account.user.id, "hello again")


async def test_read_receipts_on_both_sides_give_read_events_and_read_at(logged_in):
    alice, alice_account = await logged_in()
    bob, bob_account = await logged_in()
    me = await alice.run("me")
    assert me == Me(alice_account.user.id, alice_account.name, read_receipts=False)
    for side in (alice, bob):
        assert (await side.run("set_read_receipts", True)).read_receipts
    assert (await alice.run("me")).read_receipts

    message = await stored(alice, bob_account.user.id, "did you read this?")
    assert message.read_at is None
    assert message.cursor is not None
    [conversation] = await bob.run("conversations")
    assert conversation == Conversation(alice_account.user.id, message.cursor, unread=1)

    await bob.run("mark_read", alice_account.name, up_to=message.cursor)
    [read] = await alice.take("events", 1, cursor=message.cursor)
    assert isinstance(read, ReadEvent)
    assert (read.reader_id, read.up_to) == (bob_account.user.id, message.cursor)
    assert (await alice.run("message", message.id)).read_at == read.read_at
    assert (await bob.run("conversations"))[0].unread == 0
    assert (await alice.run("set_read_receipts", False)).read_receipts is False


async def test_erasing_the_account_needs_the_password_and_forgets_the_session(logged_in, connect):
    alice, alice_account = await logged_in()
    bob, bob_account = await logged_in()
    await stored(bob, alice_account.user.id, "to someone about to leave")
    with pytest.raises(Unauthorized) as wrong:
        await alice.run("delete_account", "not the password")
    assert not isinstance(wrong.value, SessionExpired)
    assert alice.client.session is not None

    await alice.run("delete_account", alice_account.password)
    assert alice.client.session is None
    with pytest.raises(SessionExpired):
        await alice.run("me")
    with pytest.raises(Unauthorized):
        await connect().run("login", alice_account.name, alice_account.password)
    # Its partner shows it as a deleted account: a lookup that finds nobody.
    deadline = time.monotonic() + WAIT
    while await bob.run("find_user", alice_account.user.id) is not None:
        assert time.monotonic() < deadline, "the erased account is still found"
        await asyncio.sleep(0.1)
    assert await bob.run("find_user", alice_account.name) is None
    assert await bob.run("find_user", bob_account.user.id) == bob_account.user
    [kept] = await bob.take("messages", None, alice_account.user.id)
    assert kept.content == "to someone about to leave"
