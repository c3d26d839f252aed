"""Privacy controls through the real gateway, services and workers: deleting messages,
erasing an account, blocking and read receipts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import redis

from stack.infra import libpq
from stack.processes import paused
from tests.api import PASSWORD, User, all_pages, eventually, new_user, register, send
from tests.api import wait_persisted as persisted
from tests.events import Follower
from tests.harness.stack import RunningStack

# An erased account leaves nothing behind within this long.
ERASED_WITHIN_SECONDS = 60


@contextlib.contextmanager
def following(running_stack: RunningStack, *users: User) -> Iterator[list[Follower]]:
    """Each user's stream, followed in a thread, connected before the block runs."""
    followers = [Follower(running_stack.gateway_url, user.headers, user.id) for user in users]
    for follower in followers:
        follower.start()
    try:
        eventually(lambda: all(f.connections for f in followers))
        yield followers
    finally:
        for follower in followers:
            follower.stop()


def named(follower: Follower, name: str, count: int = 1) -> list[dict[str, Any]]:
    """The ``name`` events a follower got, once there are ``count``."""

    def enough() -> list[dict[str, Any]] | None:
        found = [event.data for event in follower.events if event.name == name]
        return found if len(found) >= count else None

    return eventually(enough, timeout=15)


def workers_paused(running_stack: RunningStack) -> contextlib.AbstractContextManager[None]:
    """Every worker stopped while the block runs: what is sent stays queued."""
    return paused([p for name, p in running_stack.processes.items() if name.startswith("worker")])


def history(gateway: httpx.Client, reader: User, other: User) -> list[dict[str, Any]]:
    return all_pages(gateway, f"/get_messages?with_user={other.id}&limit=1000", reader.headers)


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["id"]) for m in messages]


def sent(gateway: httpx.Client, sender: User, receiver: User, content: str) -> int:
    answer = send(gateway, sender, receiver.id, content)
    assert answer.status_code == 202, answer.text
    return int(answer.json()["id"])


def stored(running_stack: RunningStack, message_id: int) -> bool:
    with psycopg.connect(libpq(running_stack.config.messages_database_url)) as connection:
        return (
            connection.execute("SELECT 1 FROM messages WHERE id = %s", (message_id,)).fetchone()
            is not None
        )


# Deleting messages


def test_a_sender_deletes_a_stored_message_for_both_sides(gateway, running_stack) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    kept = sent(gateway, alice, bob, "this one stays")
    taken_back = sent(gateway, alice, bob, "I should not have said that")
    persisted(gateway, bob, taken_back)
    with following(running_stack, alice, bob) as streams:
        refused = gateway.delete(f"/messages/{taken_back}", headers=bob.headers)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "only its sender can delete a message"
        assert gateway.delete(f"/messages/{taken_back}", headers=alice.headers).status_code == 204
        for stream in streams:
            assert named(stream, "deleted") == [
                {"id": taken_back, "sender_id": alice.id, "receiver_id": bob.id}
            ]
    for user, other in ((alice, bob), (bob, alice)):
        assert ids(history(gateway, user, other)) == [kept]
        gone = gateway.get(f"/messages/{taken_back}", headers=user.headers)
        assert gone.status_code == 404
        assert gone.json() == gateway.get("/messages/9999999999", headers=user.headers).json()
    again = gateway.delete(f"/messages/{taken_back}", headers=alice.headers)
    assert again.status_code == 404
    assert not stored(running_stack, taken_back)


def test_a_queued_message_deleted_before_a_worker_gets_to_it_is_never_stored(
    gateway, running_stack
) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    with workers_paused(running_stack):
        taken_back = sent(gateway, alice, bob, "queued, then taken back")
        after = sent(gateway, alice, bob, "queued after it")
        assert gateway.get(f"/messages/{taken_back}", headers=bob.headers).json()["status"] == (
            "queued"
        )
        assert gateway.delete(f"/messages/{taken_back}", headers=alice.headers).status_code == 204
        assert gateway.get(f"/messages/{taken_back}", headers=alice.headers).status_code == 404
    # The worker stores the batch without it: the message after it arrives, it never does.
    persisted(gateway, bob, after)
    assert ids(history(gateway, bob, alice)) == [after]
    assert gateway.get(f"/messages/{taken_back}", headers=bob.headers).status_code == 404
    assert not stored(running_stack, taken_back)


def test_nobody_else_can_delete_a_message_and_bad_ids_are_refused(gateway) -> None:
    alice, bob, carol = new_user(gateway), new_user(gateway), new_user(gateway)
    message = sent(gateway, alice, bob, "ours")
    stranger = gateway.delete(f"/messages/{message}", headers=carol.headers)
    assert stranger.status_code == 404
    assert stranger.json()["detail"] == "no such message"
    assert gateway.delete("/messages/0", headers=alice.headers).status_code == 422
    assert gateway.delete(f"/messages/{message}").status_code == 401
    persisted(gateway, bob, message)


# Erasing an account


def test_erasing_an_account_leaves_nothing_of_it_behind(gateway, running_stack, redis_url) -> None:
    alice, bob, carol = new_user(gateway), new_user(gateway), new_user(gateway)
    marker = f"alice-secret-{uuid.uuid4().hex}"
    from_alice = [sent(gateway, alice, bob, f"{marker} {n}") for n in range(3)]
    keyed = send(gateway, alice, bob.id, f"{marker} keyed", **{"Idempotency-Key": marker})
    assert keyed.status_code == 202
    to_alice = sent(gateway, bob, alice, "bob's message to alice stays with bob")
    assert gateway.put(f"/blocks/{carol.id}", headers=alice.headers).status_code == 204
    assert gateway.put(f"/blocks/{alice.id}", headers=carol.headers).status_code == 204
    assert (
        gateway.patch("/me", json={"read_receipts": True}, headers=alice.headers).status_code == 200
    )
    persisted(gateway, bob, to_alice)
    read = {"up_to": int(persisted(gateway, alice, to_alice)["cursor"])}  # type: ignore[call-overload]
    assert (
        gateway.post(f"/conversations/{bob.id}/read", json=read, headers=alice.headers).status_code
        == 204
    )
    for message in from_alice:
        persisted(gateway, bob, message)

    wrong = gateway.request(
        "DELETE", "/me", json={"password": "not the password"}, headers=alice.headers
    )
    assert wrong.status_code == 401
    with following(running_stack, bob) as (bob_stream,), workers_paused(running_stack):
        queued = sent(gateway, alice, bob, f"{marker} still queued")
        erased = gateway.request(
            "DELETE", "/me", json={"password": PASSWORD}, headers=alice.headers
        )
        assert erased.status_code == 204
        assert gateway.get("/get_users?limit=1", headers=alice.headers).status_code == 401
        told = named(bob_stream, "deleted", 5)
    assert sorted(event["id"] for event in told) == sorted(
        [*from_alice, keyed.json()["id"], queued]
    )

    # What bob sent alice stays in his history; nothing alice sent does.
    assert ids(history(gateway, bob, alice)) == [to_alice]
    assert gateway.get(f"/messages/{queued}", headers=bob.headers).status_code == 404
    assert gateway.get(f"/users/{alice.id}", headers=bob.headers).status_code == 404
    # Her name, and any name that looks like it, is not free again for 30 days.
    for name in (alice.name, alice.name.upper()):
        taken = register(gateway, name)
        assert taken.status_code == 409, taken.text
    assert (
        gateway.post("/login", json={"username": alice.name, "password": PASSWORD}).status_code
        == 401
    )

    leftovers = Leftovers(running_stack, redis_url, alice, marker)
    eventually(lambda: not leftovers.found(), timeout=ERASED_WITHIN_SECONDS, interval=0.5)
    assert not stored(running_stack, queued)
    # carol's block of alice went with her.
    assert gateway.get("/blocks", headers=carol.headers).json() == []


class Leftovers:
    """What remains of an account in Postgres and Redis, by its id, name and the marker
    its messages carried."""

    def __init__(
        self, running_stack: RunningStack, redis_url: str, user: User, marker: str
    ) -> None:
        self.users_database = libpq(running_stack.config.users_database_url)
        self.messages_database = libpq(running_stack.config.messages_database_url)
        self.redis_url = redis_url
        self.user = user
        self.marker = marker

    def found(self) -> list[str]:
        return self.in_users_database() + self.in_messages_database() + self.in_redis()

    def in_users_database(self) -> list[str]:
        by_user = {
            "users": "id = %(id)s OR username = %(name)s",
            "sessions": "user_id = %(id)s",
            "erasures": "user_id = %(id)s",
        }
        return self._rows(self.users_database, by_user)

    def in_messages_database(self) -> list[str]:
        by_user = {
            "messages": "sender_id = %(id)s OR content LIKE %(marker)s"
            " OR receiver_id = %(id)s AND read_at IS NOT NULL",
            "events": "user_id = %(id)s OR other_id = %(id)s OR data::text LIKE %(marker)s",
            "blocks": "blocker_id = %(id)s OR blocked_id = %(id)s",
            "preferences": "user_id = %(id)s",
            "read_marks": "reader_id = %(id)s OR other_id = %(id)s",
        }
        return self._rows(self.messages_database, by_user)

    def _rows(self, database: str, by_user: dict[str, str]) -> list[str]:
        values = {"id": self.user.id, "name": self.user.name, "marker": f"%{self.marker}%"}
        found = []
        with psycopg.connect(database) as connection:
            for table, where in by_user.items():
                count = connection.execute(f"SELECT count(*) FROM {table} WHERE {where}", values)
                if (row := count.fetchone()) and row[0]:
                    found.append(f"{row[0]} rows in {table}")
        return found

    def in_redis(self) -> list[str]:
        """Keys naming the account (its id as a key's part, its name) or holding its
        name or one of its messages."""
        part = f":{self.user.id}"
        needles = (self.marker.encode(), self.user.name.encode(), self.user.name.lower().encode())
        found = []
        with redis.Redis.from_url(self.redis_url) as client:
            for key in client.scan_iter(count=1000):
                name = key.decode()
                if name.endswith(part) or f"{part}:" in name or self.user.name.lower() in name:
                    found.append(f"key {name}")
                elif any(needle in value for needle in needles for value in _values(client, key)):
                    found.append(f"key {name} holds it")
        return found


def _values(client: redis.Redis, key: bytes) -> list[bytes]:
    """Every string a key holds (of a hash, its fields and values)."""
    kind = client.type(key)
    held: Any = []
    if kind == b"string":
        held = [client.get(key)]
    elif kind == b"hash":
        held = [part for pair in client.hgetall(key).items() for part in pair]
    elif kind == b"list":
        held = client.lrange(key, 0, -1)
    elif kind == b"set":
        held = client.smembers(key)
    elif kind == b"zset":
        held = client.zrange(key, 0, -1)
    return [value for value in held if isinstance(value, bytes)]


def test_erasing_needs_the_password(gateway) -> None:
    alice = new_user(gateway)
    missing = gateway.request("DELETE", "/me", json={}, headers=alice.headers)
    assert missing.status_code == 422
    assert gateway.request("DELETE", "/me", json={"password": PASSWORD}).status_code == 401
    assert gateway.get("/me", headers=alice.headers).json()["username"] == alice.name


# Blocking


def test_a_blocked_senders_messages_never_reach_the_blocker_and_it_cannot_tell(
    gateway, running_stack
) -> None:
    alice, bob, carol = new_user(gateway), new_user(gateway), new_user(gateway)
    before = sent(gateway, alice, bob, "before the block")
    persisted(gateway, bob, before)
    assert gateway.put(f"/blocks/{alice.id}", headers=bob.headers).status_code == 204
    assert gateway.put(f"/blocks/{alice.id}", headers=bob.headers).status_code == 204
    blocks = gateway.get("/blocks", headers=bob.headers).json()
    assert [b["user_id"] for b in blocks] == [alice.id]

    with following(running_stack, alice, bob) as (alice_stream, bob_stream):
        to_blocker = send(gateway, alice, bob.id, "while blocked")
        to_other = send(gateway, alice, carol.id, "to someone who does not block")
        # Same status, same body shape, same headers: the sender cannot tell.
        assert to_blocker.status_code == to_other.status_code == 202
        assert set(to_blocker.json()) == set(to_other.json())
        assert to_blocker.json()["status"] == to_other.json()["status"] == "queued"
        assert set(to_blocker.headers) == set(to_other.headers)
        hidden = int(to_blocker.json()["id"])
        # Its sender sees it stored and on its stream, as any other.
        assert persisted(gateway, alice, hidden)["content"] == "while blocked"
        assert hidden in ids(alice_stream.wait_for(2))
        # A later message from someone else reaches bob's stream; the hidden one never does.
        from_carol = sent(gateway, carol, bob, "from carol")
        eventually(lambda: from_carol in ids(bob_stream.messages()))
        assert hidden not in ids(bob_stream.messages())
    assert ids(history(gateway, alice, bob)) == [before, hidden]
    assert ids(history(gateway, bob, alice)) == [before]
    assert gateway.get(f"/messages/{hidden}", headers=bob.headers).status_code == 404
    assert hidden not in ids(all_pages(gateway, "/get_messages?limit=1000", bob.headers))

    # The blocker cannot send to whom it blocks.
    refused = send(gateway, bob, alice.id, "hello?")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "you block this user: unblock them first"

    # Unblocked: what alice sends from now on arrives; what she sent meanwhile does not.
    assert gateway.delete(f"/blocks/{alice.id}", headers=bob.headers).status_code == 204
    assert gateway.get("/blocks", headers=bob.headers).json() == []
    after = sent(gateway, alice, bob, "after the block")
    persisted(gateway, bob, after)
    assert ids(history(gateway, bob, alice)) == [before, after]
    assert send(gateway, bob, alice.id, "hello again").status_code == 202


def test_blocking_yourself_or_nobody_is_refused(gateway) -> None:
    alice = new_user(gateway)
    itself = gateway.put(f"/blocks/{alice.id}", headers=alice.headers)
    assert itself.status_code == 403
    assert itself.json()["detail"] == "you cannot block yourself"
    assert gateway.put("/blocks/9999999999", headers=alice.headers).status_code == 404
    assert gateway.put("/blocks/0", headers=alice.headers).status_code == 422
    assert gateway.get("/blocks").status_code == 401


# Read receipts


def mark_read(gateway: httpx.Client, reader: User, other: User, up_to: int) -> None:
    answer = gateway.post(
        f"/conversations/{other.id}/read", json={"up_to": up_to}, headers=reader.headers
    )
    assert answer.status_code == 204, answer.text


def receipts(gateway: httpx.Client, user: User, on: bool) -> None:
    answer = gateway.patch("/me", json={"read_receipts": on}, headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["read_receipts"] is on


def read_at(gateway: httpx.Client, reader: User, message_id: int) -> Any:
    return gateway.get(f"/messages/{message_id}", headers=reader.headers).json()["read_at"]


def test_read_receipts_are_off_by_default_and_flow_only_when_both_sides_have_them_on(
    gateway, running_stack
) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    me = gateway.get("/me", headers=alice.headers).json()
    assert me == {"id": alice.id, "username": alice.name, "read_receipts": False}
    first, second, third = (sent(gateway, alice, bob, f"message {n}") for n in range(3))
    cursors = [int(persisted(gateway, bob, m)["cursor"]) for m in (first, second, third)]  # type: ignore[call-overload]

    # Neither sends receipts: bob's read mark counts for his unread counts only.
    mark_read(gateway, bob, alice, cursors[0])
    assert read_at(gateway, alice, first) is None
    unread = {
        c["user_id"]: c["unread"] for c in gateway.get("/conversations", headers=bob.headers).json()
    }
    assert unread == {alice.id: 2}

    # Only bob sends them: alice, who does not, sees none.
    receipts(gateway, bob, True)
    mark_read(gateway, bob, alice, cursors[1])
    assert read_at(gateway, alice, second) is None
    assert history(gateway, alice, bob)[1]["read_at"] is None

    # Both do: alice sees when bob read, live and in her history.
    receipts(gateway, alice, True)
    with following(running_stack, alice) as (alice_stream,):
        mark_read(gateway, bob, alice, cursors[2])
        (event,) = named(alice_stream, "read")
    assert event["reader_id"] == bob.id
    assert event["up_to"] == cursors[2]
    seen = {m["id"]: m["read_at"] for m in history(gateway, alice, bob)}
    assert seen[third] == event["read_at"]
    assert seen[second] is not None
    assert gateway.get("/conversations", headers=bob.headers).json()[0]["unread"] == 0

    # Off again on alice's side: she sees none, though bob still sends them.
    receipts(gateway, alice, False)
    assert all(m["read_at"] is None for m in history(gateway, alice, bob))


def test_bad_read_marks_and_preferences_are_refused(gateway) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    for body in ({}, {"up_to": -1}, {"up_to": "soon"}):
        answer = gateway.post(f"/conversations/{bob.id}/read", json=body, headers=alice.headers)
        assert answer.status_code == 422, body
    assert (
        gateway.patch(
            "/me", json={"read_receipts": "yes please"}, headers=alice.headers
        ).status_code
        == 422
    )
    assert gateway.patch("/me", json={"colour": "blue"}, headers=alice.headers).status_code == 422
    assert gateway.get("/me").status_code == 401
