"""The event stream through the real gateway, message_service and workers."""

import contextlib
import os
import signal
import socket
import subprocess
import time

import httpx

from common.internal import INTERNAL_TOKEN_HEADER, USER_ID_HEADER
from common.tokens import issue_token, verify_token
from tests.api import User, eventually, new_user, send
from tests.events import READ_TIMEOUT, Follower, parse, read_some
from tests.harness.settings import INTERNAL_TOKEN, JWT_SECRET
from tests.harness.stack import RunningStack, gateways, replicas

# How long a server told to stop may take to end its streams and exit.
STOP_SECONDS = 5.0


def send_all(gateway: httpx.Client, sender: User, receiver: User, contents: list[str]) -> list[int]:
    return [send(gateway, sender, receiver.id, content).json()["id"] for content in contents]


def test_every_message_arrives_once_in_order_to_both_sides(gateway, running_stack) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    followers = [Follower(running_stack.gateway_url, user.headers) for user in (alice, bob)]
    for follower in followers:
        follower.start()
    try:
        eventually(lambda: all(f.connections for f in followers))
        sent = send_all(gateway, alice, bob, [f"Привет 👋 {n}" for n in range(15)])
        sent += send_all(gateway, bob, alice, [f"reply {n}" for n in range(5)])
        for follower in followers:
            seen = follower.wait_for(20)
            assert sorted(m["id"] for m in seen) == sorted(sent)
            cursors = [m["cursor"] for m in seen]
            assert cursors == sorted(cursors)
            assert len(set(cursors)) == 20
            # Each conversation in the order it was sent.
            assert [m["id"] for m in seen if m["sender_id"] == alice.id] == sent[:15]
        # The event is the message as get_messages shows it.
        listed = gateway.get(f"/get_messages?with_user={bob.id}", headers=alice.headers).json()
        assert followers[0].messages() == listed
        assert followers[0].events[0].id == str(listed[0]["cursor"])
    finally:
        for follower in followers:
            follower.stop()


def test_a_reconnect_with_last_event_id_gets_what_was_missed_then_goes_live(
    gateway, running_stack
) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    before = send_all(gateway, alice, bob, ["one", "two", "three"])
    first = read_some(running_stack.gateway_url, bob.headers, 3)
    assert [e.data["id"] for e in first] == before
    away = send_all(gateway, alice, bob, ["while", "away"])
    resumed = Follower(
        running_stack.gateway_url, {**bob.headers, "Last-Event-ID": str(first[-1].id)}
    )
    resumed.start()
    try:
        assert [m["id"] for m in resumed.wait_for(2)] == away
        live = send_all(gateway, alice, bob, ["and live"])
        assert [m["id"] for m in resumed.wait_for(3)] == away + live
    finally:
        resumed.stop()
    # A client that cannot set headers passes the cursor in the query.
    again = read_some(running_stack.gateway_url, bob.headers, 3, cursor=str(first[0].id))
    assert [e.data["id"] for e in again] == before[1:] + away[:1]


def test_a_client_may_resume_on_another_gateway_and_message_service(
    gateway, running_stack: RunningStack, redis_url: str
) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    sent = send_all(gateway, alice, bob, ["on the first replica"])
    first = read_some(running_stack.gateway_url, bob.headers, 1)
    with gateways(running_stack, redis_url, {}, 1) as (other,):
        later = send_all(gateway, alice, bob, ["then", "more"])
        resumed = read_some(other, {**bob.headers, "Last-Event-ID": str(first[-1].id)}, 2)
    assert [e.data["id"] for e in first] == sent
    assert [e.data["id"] for e in resumed] == later


def stop_while_streaming(
    server: subprocess.Popen[bytes], url: str, headers: dict[str, str]
) -> None:
    """Open a stream at ``url``, read its first event, then stop ``server`` (SIGTERM):
    the stream must end as a response does (a cut-off body would raise here) and the
    server exit within ``STOP_SECONDS``, by the signal it got, which uvicorn raises
    again once it has shut down."""
    with (
        httpx.Client(base_url=url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", "/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(parse(lines)).name == "message"
        os.killpg(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        # Keep-alives come each second while the stream lasts.
        for _ in lines:
            assert time.monotonic() < deadline, "the stream outlived its server's stop"
    assert server.wait(STOP_SECONDS) == -signal.SIGTERM


def test_a_stopping_server_ends_its_streams_and_exits_at_once(
    gateway, running_stack: RunningStack, redis_url: str
) -> None:
    """A stopping uvicorn waits for every response to end, and a stream never ends on its
    own: a gateway or message_service told to stop ends the streams it sends and exits,
    rather than be killed at the end of its grace period; the client resumes on another
    replica with its Last-Event-ID and misses nothing."""
    alice, bob = new_user(gateway), new_user(gateway)
    first = send_all(gateway, alice, bob, ["before the stops"])
    internal = {INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN, USER_ID_HEADER: str(bob.id)}
    with replicas(running_stack, redis_url, {}, 1) as started:
        stop_while_streaming(started.gateways[0], started.urls[0], bob.headers)
        stop_while_streaming(started.message_service, started.message_service_url, internal)
    cursor = gateway.get(f"/messages/{first[0]}", headers=bob.headers).json()["cursor"]
    later = send_all(gateway, alice, bob, ["after them"])
    resumed = read_some(running_stack.gateway_url, {**bob.headers, "Last-Event-ID": str(cursor)}, 1)
    assert [e.data["id"] for e in resumed] == later


def test_a_third_users_stream_shows_none_of_the_pairs_messages(gateway, running_stack) -> None:
    alice, bob, carol = new_user(gateway), new_user(gateway), new_user(gateway)
    watcher = Follower(running_stack.gateway_url, carol.headers)
    watcher.start()
    try:
        eventually(lambda: watcher.connections)
        send_all(gateway, alice, bob, ["private"])
        mine = send_all(gateway, alice, carol, ["for carol"])
        assert [m["id"] for m in watcher.wait_for(1)] == mine
        time.sleep(0.5)  # what else arrives meanwhile would be a leak
        assert [m["id"] for m in watcher.messages()] == mine
    finally:
        watcher.stop()


def test_without_a_token_the_stream_is_401_and_a_bad_cursor_422(gateway) -> None:
    alice = new_user(gateway)
    assert gateway.get("/events").status_code == 401
    bad = gateway.get("/events", headers={**alice.headers, "Last-Event-ID": "x"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "Last-Event-ID"
    assert gateway.get("/events?cursor=-1", headers=alice.headers).status_code == 422


def test_the_stream_ends_with_reauthenticate_when_the_token_expires(gateway, running_stack) -> None:
    alice = new_user(gateway)
    short = issue_token(secret=JWT_SECRET, user_id=alice.id, ttl_seconds=2)
    expires = verify_token(secret=JWT_SECRET, token=short).expires
    with (
        httpx.Client(base_url=running_stack.gateway_url, timeout=10) as client,
        client.stream("GET", "/events", headers={"Authorization": f"Bearer {short}"}) as stream,
    ):
        assert stream.status_code == 200
        events = list(parse(stream.iter_lines()))
    assert events[-1].name == "reauthenticate"
    # Not before the token's expiry; soon after it (the hub looks every second).
    assert expires <= time.time() < expires + 5
    assert gateway.get("/events", headers={"Authorization": f"Bearer {short}"}).status_code == 401


def test_a_reader_that_stops_reading_is_cut_off_and_its_stream_let_go(
    gateway, running_stack
) -> None:
    """The test stack cuts off a client that reads nothing for 3 s and allows 4 streams per
    user: 4 stalled readers fill the allowance; messages go on until the servers' buffers
    are full and their writes pause, and once the readers are cut off the allowance is
    free again."""
    alice, bob = new_user(gateway), new_user(gateway)
    port = int(running_stack.gateway_url.rsplit(":", 1)[1])
    stalled = []
    for _ in range(4):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        sock.connect(("127.0.0.1", port))
        token = bob.headers["Authorization"]
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n".encode())
        # The answer has begun (its stream holds a place); from now on nothing is read.
        assert sock.recv(15) == b"HTTP/1.1 200 OK"
        stalled.append(sock)
    with httpx.Client(base_url=running_stack.gateway_url, timeout=10) as client:

        def opens() -> int:
            with client.stream("GET", "/events", headers=bob.headers) as response:
                return response.status_code

        assert opens() == 429
        deadline = time.monotonic() + 60
        while opens() != 200:
            assert time.monotonic() < deadline, "the stalled streams were never cut off"
            send_all(gateway, alice, bob, ["x" * 4000 for _ in range(50)])
    for sock in stalled:
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass
        sock.close()
