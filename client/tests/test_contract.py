"""The library's behaviour where the real stack cannot show it at will, or does not
have the endpoint yet (sessions: ``/token/refresh``, ``/logout``): against a scripted
server that answers as the API contract says. Sync and async, as everywhere."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from anonchat_client import (
    AnonchatError,
    Client,
    CredentialsFile,
    DeletedEvent,
    MessageEvent,
    RateLimited,
    ReadEvent,
    ServerUnreachable,
    Session,
    SessionExpired,
    Unauthorized,
    Unavailable,
)
from anonchat_client._core import Backoff
from client.tests.support import Either

SERVER = "http://anonchat.test"
Handler = Callable[[httpx.Request], httpx.Response]


def tokens(access: str, refresh: str | None = "r1", expires_in: int = 900) -> dict[str, object]:
    answer: dict[str, object] = {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": expires_in,
    }
    if refresh is not None:
        answer |= {"refresh_token": refresh, "refresh_expires_in": 86400}
    return answer


def refused(code: str = "unauthorized", detail: str = "invalid or expired token") -> httpx.Response:
    """A refused token, as the gateway refuses one: a 401 with a Bearer challenge."""
    return httpx.Response(
        401, json={"detail": detail, "code": code}, headers={"WWW-Authenticate": "Bearer"}
    )


def session(access: str = "a1", refresh: str | None = "r1", expires_in: float = 900) -> Session:
    return Session(access, time.time() + expires_in, refresh, time.time() + 86400, "alice", 1)


class Scripted:
    """A server that answers each request with ``handler``, and notes them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


def bearer(request: httpx.Request):
    return request.headers.get("authorization", "").removeprefix("Bearer ")


@pytest.fixture(params=["sync", "async"])
async def scripted(request: pytest.FixtureRequest):
    """Opens a client of the kind the test runs with on a scripted server."""
    opened: list[Either] = []

    def open_client(handler: Handler, **options: object) -> tuple[Either, Scripted]:
        server = Scripted(handler)
        options.setdefault("transport", httpx.MockTransport(server))
        opened.append(Either(request.param, SERVER, **options))
        return opened[-1], server

    yield open_client
    for either in opened:
        await either.close()


def users_with_token(valid: str) -> Handler:
    def handle(request: httpx.Request):
        if request.url.path == "/token/refresh":
            assert json.loads(request.content) == {"refresh_token": "r1"}
            return httpx.Response(200, json=tokens("a2", "r2"))
        if bearer(request) != valid:
            return refused()
        return httpx.Response(200, json=[{"id": 1, "username": "alice"}])

    return handle


async def test_a_refused_token_is_refreshed_once_and_the_call_retried(scripted):
    either, server = scripted(users_with_token("a2"), session=session())
    users = await either.take("users", None)
    assert [user.username for user in users] == ["alice"]
    assert server.paths() == ["/get_users", "/token/refresh", "/get_users"]
    assert either.client.session.access_token == "a2"
    assert either.client.session.refresh_token == "r2"
    assert either.client.session.user_id == 1  # kept across the refresh


async def test_a_token_still_refused_after_a_refresh_means_log_in_again(scripted):
    either, server = scripted(users_with_token("never"), session=session())
    with pytest.raises(SessionExpired, match="log in again"):
        await either.take("users", None)
    assert server.paths().count("/token/refresh") == 1


async def test_a_token_about_to_expire_is_refreshed_first(scripted):
    either, server = scripted(users_with_token("a2"), session=session(expires_in=5))
    await either.take("users", None)
    assert server.paths() == ["/token/refresh", "/get_users"]


async def test_without_a_refresh_token_a_401_means_log_in_again(scripted):
    either, server = scripted(users_with_token("a2"), session=session(refresh=None))
    with pytest.raises(SessionExpired) as error:
        await either.take("users", None)
    assert "/token/refresh" not in server.paths()
    assert error.value.status == 401


async def test_a_session_ended_at_the_server_is_forgotten(scripted):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token/refresh":
            return refused("session_ended", "the session has ended")
        return refused()

    either, server = scripted(handle, session=session())
    with pytest.raises(SessionExpired) as error:
        await either.run("message", 1)
    assert error.value.code == "session_ended"
    assert either.client.session is None


async def test_a_401_for_a_wrong_password_is_not_a_refused_token(scripted):
    wrong = httpx.Response(401, json={"detail": "wrong password", "code": "unauthorized"})
    either, server = scripted(sends(wrong), session=session())
    with pytest.raises(Unauthorized) as error:
        await either.run("change_password", "not it", "a new password")
    assert not isinstance(error.value, SessionExpired)
    assert error.value.detail == "wrong password"
    assert server.paths() == ["/password"]
    assert either.client.session is not None


async def test_logout_ends_the_session_at_the_server(scripted):
    either, server = scripted(lambda request: httpx.Response(204), session=session())
    await either.run("logout")
    assert server.paths() == ["/logout"]
    assert bearer(server.requests[0]) == "a1"
    assert either.client.session is None


async def test_logout_from_a_server_without_sessions_still_forgets(scripted):
    def handle(request: httpx.Request) -> httpx.Response:
        detail = f"no such endpoint: POST {request.url.path}"
        return httpx.Response(404, json={"detail": detail, "code": "not_found"})

    either, _ = scripted(handle, session=session(refresh=None))
    await either.run("logout")
    assert either.client.session is None


def sends(*answers: httpx.Response | Exception) -> Handler:
    remaining = list(answers)

    def handle(request: httpx.Request):
        answer = remaining.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


QUEUED = {
    "id": 7,
    "status": "queued",
    "message": "Message sent successfully",
    "sender_id": 1,
    "receiver_id": 2,
    "created_at": "2026-11-29T23:30:00.123456Z",
}


async def test_a_send_is_retried_with_the_same_key(scripted):
    either, server = scripted(
        sends(
            httpx.Response(503, json={"detail": "down", "code": "x"}, headers={"Retry-After": "0"}),
            httpx.ConnectError("connection refused"),
            httpx.ReadError("connection reset"),
            httpx.Response(429, json={"detail": "slow", "code": "y"}, headers={"Retry-After": "0"}),
            httpx.Response(202, json=QUEUED, headers={"Idempotency-Replayed": "true"}),
        ),
        session=session(),
    )
    sent = await either.run("send", 2, "hello")
    assert (sent.id, sent.replayed) == (7, True)
    keys = {request.headers["idempotency-key"] for request in server.requests}
    assert len(server.requests) == 5
    assert len(keys) == 1


async def test_a_wait_past_the_deadline_is_not_waited(scripted):
    limited = httpx.Response(
        429,
        json={"detail": "too many sends", "code": "too_many_requests"},
        headers={"Retry-After": "30"},
    )
    either, server = scripted(sends(limited), session=session())
    started = time.monotonic()
    with pytest.raises(RateLimited) as error:
        await either.run("send", 2, "hello", deadline=2)
    assert time.monotonic() - started < 1
    assert error.value.retry_after == 30
    assert error.value.code == "too_many_requests"


async def test_a_registration_whose_answer_was_lost_is_not_sent_again(scripted):
    either, server = scripted(sends(httpx.ReadError("connection reset")))
    with pytest.raises(ServerUnreachable):
        await either.run("register", "alice", "correct horse")
    assert len(server.requests) == 1


async def test_an_answer_that_is_not_json_still_makes_an_error(scripted):
    either, _ = scripted(sends(httpx.Response(502, text="<html>Bad Gateway</html>")))
    with pytest.raises(Unavailable) as error:
        await either.run("register", "alice", "correct horse")
    assert error.value.status == 502
    assert "Bad Gateway" in error.value.detail


def event(cursor: int, content: str) -> str:
    message = {
        "id": cursor * 10,
        "cursor": cursor,
        "content": content,
        "sender_id": 1,
        "receiver_id": 2,
        "created_at": "2026-11-29T23:30:00Z",
    }
    return f"id: {cursor}\nevent: message\ndata: {json.dumps(message)}\n\n"


def streams(*bodies: str) -> tuple[Handler, list[str | None]]:
    """A server whose n-th stream sends ``bodies[n]`` and ends; notes each stream's
    Last-Event-ID."""
    remaining, resumed_after = list(bodies), []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token/refresh":
            return httpx.Response(200, json=tokens("a2", "r2"))
        resumed_after.append(request.headers.get("last-event-id"))
        body = "retry: 20\n\n" + remaining.pop(0)
        return httpx.Response(200, text=body, headers={"Content-Type": "text/event-stream"})

    return handle, resumed_after


async def test_the_stream_resumes_after_the_last_event_and_never_repeats_one(scripted):
    handle, resumed_after = streams(
        event(1, "one") + ": keep-alive\n\n" + event(2, "two"),
        event(2, "two again") + event(3, "three"),
    )
    either, _ = scripted(handle, session=session())
    events = await either.take("events", 3)
    assert all(isinstance(e, MessageEvent) for e in events)
    assert [(e.cursor, e.message.content) for e in events] == [(1, "one"), (2, "two"), (3, "three")]
    assert resumed_after == [None, "2"]


def told(cursor: int, name: str, data: dict[str, object]) -> str:
    return f"id: {cursor}\nevent: {name}\ndata: {json.dumps(data)}\n\n"


async def test_deleted_and_read_events_are_typed_and_never_repeated(scripted):
    deleted = told(2, "deleted", {"id": 10, "sender_id": 1, "receiver_id": 2})
    read = told(3, "read", {"reader_id": 2, "up_to": 1, "read_at": "2026-12-01T22:30:00Z"})
    handle, resumed_after = streams(event(1, "one") + deleted, deleted + read)
    either, _ = scripted(handle, session=session())
    events = await either.take("events", 3)
    assert events[1:] == [
        DeletedEvent(2, id=10, sender_id=1, receiver_id=2),
        ReadEvent(3, reader_id=2, up_to=1, read_at=datetime(2026, 12, 1, 22, 30, tzinfo=UTC)),
    ]
    assert resumed_after == [None, "2"]


async def test_an_expired_stream_is_refreshed_and_resumed(scripted):
    handle, resumed_after = streams(
        event(1, "one") + 'event: reauthenticate\ndata: {"detail": "token expired"}\n\n',
        event(2, "two"),
    )
    either, server = scripted(handle, session=session())
    events = await either.take("events", 2, cursor=0)
    assert [e.cursor for e in events] == [1, 2]
    assert resumed_after == ["0", "1"]
    assert [bearer(r) for r in server.requests] == ["a1", "", "a2"]


async def test_an_expired_stream_without_a_refresh_token_means_log_in_again(scripted):
    handle, _ = streams('event: reauthenticate\ndata: {"detail": "token expired"}\n\n')
    either, _ = scripted(handle, session=session(refresh=None))
    with pytest.raises(SessionExpired):
        await either.take("events", 1)


def test_backoff_grows_with_jitter_up_to_its_cap():
    backoff = Backoff(base=1.0, cap=30.0)
    delays = [backoff.next() for _ in range(12)]
    assert all(0.5 <= delay <= 30 for delay in delays)
    assert delays[0] <= 1
    assert all(delay >= 15 for delay in delays[6:])
    backoff.reset()
    assert backoff.next() <= 1


def token(store: CredentialsFile) -> str:
    loaded = store.load()
    assert loaded is not None
    return loaded.access_token


def test_the_credentials_file_is_the_owners_only_one_entry_per_server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    here, there = CredentialsFile("http://a.test/"), CredentialsFile("http://b.test")
    assert here.path == tmp_path / "config" / "anonchat" / "credentials.json"
    here.save(session("a"))
    there.save(session("b"))
    assert stat.S_IMODE(os.stat(here.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(here.path.parent).st_mode) == 0o700
    assert token(here) == "a"
    assert token(there) == "b"
    here.save(None)
    assert here.load() is None
    assert token(there) == "b"


def test_two_processes_never_spend_one_refresh_token_twice(tmp_path):
    """A second client (another ``anonchat`` process) whose token is old takes the
    session the first refreshed from the shared file, instead of refreshing again with
    the spent refresh token (which would end the session)."""
    path = tmp_path / "credentials.json"
    CredentialsFile(SERVER, path).save(session(expires_in=5))
    server = Scripted(users_with_token("a2"))
    first = Client(
        SERVER, store=CredentialsFile(SERVER, path), transport=httpx.MockTransport(server)
    )
    second = Client(
        SERVER, store=CredentialsFile(SERVER, path), transport=httpx.MockTransport(server)
    )
    with first, second:
        list(first.users())
        list(second.users())
        assert first.session is not None
        assert first.session.access_token == "a2"
        assert second.session == first.session
    assert server.paths() == ["/token/refresh", "/get_users", "/get_users"]


async def test_an_answer_that_is_not_the_apis_is_an_error_not_a_crash(scripted):
    either, _ = scripted(lambda request: httpx.Response(200, text="<html>a portal</html>"))
    with pytest.raises(AnonchatError) as error:
        await either.run("login", "alice", "correct horse")
    assert error.value.code == "unexpected_answer"
    assert "a portal" in error.value.detail
