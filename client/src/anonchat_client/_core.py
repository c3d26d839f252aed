"""Everything the two clients do that is not I/O, written once (sans-I/O, as h11 and
httpx's own core are): building requests, reading answers, errors, the retry policy,
refreshing the session and resuming the event stream.

Each operation is a generator. It yields an *effect* (send this request, wait this
long, refresh the session, read the stream's next event, hand this item to the caller)
and is sent what came of it, or has the failure thrown in. ``Client`` and
``AsyncClient`` only carry effects out, with blocking or awaited I/O, so the two cannot
behave differently."""

from __future__ import annotations

import enum
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent

from anonchat_client._effects import Call, CloseStream, Emit, NextEvent, Op, Pause, Renew
from anonchat_client._errors import (
    AnonchatError,
    FieldError,
    NotFound,
    RateLimited,
    ServerUnreachable,
    SessionExpired,
    Unauthorized,
    Unavailable,
    error_class,
)
from anonchat_client._models import (
    Block,
    Conversation,
    Event,
    Me,
    Message,
    OtherEvent,
    Sent,
    Session,
    User,
    parse_event,
)
from anonchat_client.sessions import MemoryStore, SessionStore

T = TypeVar("T")
TransportT = TypeVar("TransportT")

__version__ = "0.1.0"
DEFAULT_SERVER = "http://localhost:8000"
# Refresh an access token this long before it expires, so that no call carries one that
# lapses on the way.
RENEW_MARGIN_SECONDS = 30.0
# The server's code for a session that is over (refresh token spent, expired or ended).
SESSION_ENDED = "session_ended"
# The largest cursor: reading back ``before`` it starts at the newest message.
NEWEST_CURSOR = 2**63 - 1


class Retry(enum.Enum):
    """When a request may be sent again."""

    # Repeating it changes nothing (reads, keyed sends): after any failure to get an
    # answer, a 429, or a 502 to 504.
    SAFE = "safe"
    # It may have done something once it reached the server (a registration, a refresh,
    # whose single-use token it would spend twice): only when it surely did not, a
    # connection never made, a 429 or a 503.
    UNSENT = "unsent"


# Failures that happen before a request's first byte leaves.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th delay is drawn from the upper half of
    ``min(cap, base * 2**n)``, so that clients that failed together spread out."""

    base: float
    cap: float
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2.0**self.attempts)
        self.attempts += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


class Attempts:
    """The retries of one request, until ``deadline`` (a ``time.monotonic()`` reading)."""

    def __init__(self, retry: Retry, deadline: float) -> None:
        self.retry = retry
        self.deadline = deadline
        self.backoff = Backoff(base=0.2, cap=5.0)

    def delay_after(self, error: AnonchatError, *, unsent: bool = False) -> float:
        """How long to wait before trying again; raises ``error`` when it must not be
        retried, or not before the deadline."""
        if not self._retryable(error, unsent=unsent):
            raise error
        if error.retry_after is not None:
            # As the server said, spread by a tenth so that its callers do not return
            # in one burst.
            delay = error.retry_after * (1 + random.uniform(0, 0.1))
        else:
            delay = self.backoff.next()
        if time.monotonic() + delay > self.deadline:
            raise error
        return delay

    def _retryable(self, error: AnonchatError, *, unsent: bool) -> bool:
        if isinstance(error, ServerUnreachable):
            return self.retry is Retry.SAFE or unsent
        if isinstance(error, RateLimited):
            return True
        if isinstance(error, Unavailable):
            return self.retry is Retry.SAFE or error.status == 503
        return False


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from(response: httpx.Response) -> AnonchatError:
    """The exception for an error answer, with the server's code and detail."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200] or response.reason_phrase
        body = {"detail": text or f"HTTP {status}"}
    errors = tuple(
        FieldError(str(item.get("field", "")), str(item.get("message", "")))
        for item in body.get("errors") or ()
        if isinstance(item, dict)
    )
    return error_class(status)(
        str(body.get("detail", f"HTTP {status}")),
        code=str(body.get("code", f"http_{status}")),
        status=status,
        errors=errors,
        retry_after=_retry_after(response),
    )


def read(response: httpx.Response, parse: Callable[..., T], **context: Any) -> T:
    """``parse`` of a successful answer's JSON; an :class:`AnonchatError` where the answer
    is not what the API says (a proxy's page, another server)."""
    try:
        return parse(response.json(), **context)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnonchatError(
            f"unexpected answer to {response.request.method} {response.request.url.path}: "
            f"{response.text.strip()[:100]!r}",
            code="unexpected_answer",
            status=response.status_code,
        ) from exc


def unreachable(exc: httpx.TransportError, server: httpx.URL) -> ServerUnreachable:
    """The exception for a request that got no answer."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out: {reason}"
    return ServerUnreachable(
        f"cannot reach the server at {str(server).rstrip('/')} ({reason})", code="unreachable"
    )


def refuses_token(response: httpx.Response) -> bool:
    """Whether a 401 refuses the access token (it carries a ``Bearer`` challenge, RFC
    6750), rather than something else the request carried, such as a wrong password."""
    challenge = response.headers.get("www-authenticate", "")
    return response.status_code == 401 and challenge.lower().startswith("bearer")


def _expired(error: AnonchatError | None = None) -> SessionExpired:
    detail = error.detail if error is not None else "the session expired"
    code = error.code if error is not None else "session_expired"
    return SessionExpired(f"{detail}: log in again", code=code, status=401)


def not_logged_in() -> SessionExpired:
    return SessionExpired("not logged in: log in first", code="not_logged_in")


@dataclass
class _Resume:
    """Where a stream of events resumes: after ``last``, the last event handed on, so
    that none is handed on twice."""

    last: int | None
    backoff: Backoff

    def headers(self) -> dict[str, str]:
        return {} if self.last is None else {"Last-Event-ID": str(self.last)}

    def take(self, sse: ServerSentEvent) -> Event | None:
        """The event, unless it carries nothing (``retry``, a keep-alive) or came before."""
        if sse.retry is not None:
            self.backoff.base = sse.retry / 1000
        if not sse.data:
            return None
        cursor = int(sse.id) if sse.id.isdigit() else None
        if cursor is not None:
            if self.last is not None and cursor <= self.last:
                return None
            self.last = cursor
        try:
            return parse_event(sse.event, cursor, json.loads(sse.data))
        except (ValueError, KeyError, TypeError):
            return OtherEvent(cursor, sse.event, sse.data)


class Core:
    """The state and the operations of one client of one server."""

    def __init__(
        self,
        *,
        server: str,
        store: SessionStore,
        timeout: float,
        stream_timeout: float,
        retry_deadline: float,
    ) -> None:
        self.server = httpx.URL(server.rstrip("/") + "/")
        self.store = store
        self.session = store.load()
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry_deadline = retry_deadline

    # Requests and their retries.

    def request(
        self,
        method: str,
        path: str,
        *,
        session: Session | None = None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Request:
        """The request for ``path`` (relative to the server, or a URL it gave)."""
        sent = {
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"anonchat-client/{__version__}",
            **(headers or {}),
        }
        if session is not None:
            sent["Authorization"] = f"Bearer {session.access_token}"
        read = self.stream_timeout if stream else self.timeout
        timeout = httpx.Timeout(self.timeout, read=read)
        return httpx.Request(
            method,
            self.server.join(path),
            params=params,
            json=body,
            headers=sent,
            extensions={"timeout": timeout.as_dict()},
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        retry: Retry,
        auth: bool = True,
        deadline: float | None = None,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Op[httpx.Response]:
        """The successful answer to a request, retried as ``retry`` allows within
        ``deadline`` seconds, with a session refreshed once on a refused token."""
        within = self.retry_deadline if deadline is None else deadline
        attempts = Attempts(retry, time.monotonic() + within)
        renewed = False
        while True:
            session = (yield from self.fresh_session()) if auth else None
            request = self.request(
                method, path, session=session, params=params, body=body, headers=headers
            )
            try:
                response: httpx.Response = yield Call(request)
            except httpx.TransportError as exc:
                failure = unreachable(exc, self.server)
                yield Pause(attempts.delay_after(failure, unsent=isinstance(exc, _NOT_SENT)))
                continue
            if response.is_success:
                return response
            error = error_from(response)
            if session is not None and refuses_token(response):
                if renewed or not self.renewable(session, error):
                    raise _expired(error)
                renewed = True
                yield Renew(session)
                continue
            yield Pause(attempts.delay_after(error))

    # The session.

    def fresh_session(self) -> Op[Session]:
        """The session, refreshed first when its access token is about to expire."""
        session = self.session
        if session is None:
            raise not_logged_in()
        if session.refresh_token is not None and session.expires_within(RENEW_MARGIN_SECONDS):
            yield Renew(session)
            session = self.session
            if session is None:
                raise not_logged_in()
        return session

    def renewable(self, session: Session, error: AnonchatError) -> bool:
        """Whether a refused token may be cured by refreshing: there is a refresh token
        and the session is not over. (An expired access token has no code of its own,
        so any other refusal gets one refresh.)"""
        return session.refresh_token is not None and error.code != SESSION_ENDED

    def adopt(self, session: Session | None) -> None:
        """Make ``session`` the client's, and the store's."""
        with self.store.lock():
            self.store.save(session)
        self.session = session

    def renew(self, stale: Session) -> Op[None]:
        """Replace ``stale`` by a refreshed session: one another thread or process
        refreshed meanwhile, else a new one from ``POST /token/refresh``."""
        if self.session is not None and self.session.access_token != stale.access_token:
            return
        with self.store.lock():
            stored = self.store.load()
            if stored is not None and stored.access_token != stale.access_token:
                self.session = stored
                return
            if stale.refresh_token is None:
                raise _expired()
            started = time.time()
            try:
                response = yield from self.call(
                    "POST",
                    "token/refresh",
                    auth=False,
                    retry=Retry.UNSENT,
                    body={"refresh_token": stale.refresh_token},
                )
            except Unauthorized as exc:
                self.store.save(None)
                self.session = None
                raise _expired(exc) from None
            fresh = read(response, Session.parse, now=started, username=stale.username)
            fresh = replace(fresh, user_id=stale.user_id)
            self.store.save(fresh)
            self.session = fresh

    # The API.

    def _credentials(
        self, path: str, username: str, password: str, retry: Retry
    ) -> Op[httpx.Response]:
        body = {"username": username, "password": password}
        return (yield from self.call("POST", path, auth=False, retry=retry, body=body))

    def register(self, username: str, password: str) -> Op[User]:
        response = yield from self._credentials("register", username, password, Retry.UNSENT)
        return read(response, User.parse)

    def login(self, username: str, password: str) -> Op[Session]:
        started = time.time()
        response = yield from self._credentials("login", username, password, Retry.SAFE)
        session = read(response, Session.parse, now=started, username=username)
        self.adopt(session)
        return session

    def logout(self) -> Op[None]:
        if self.session is None:
            return
        try:
            yield from self.call("POST", "logout", retry=Retry.SAFE)
        except SessionExpired:
            pass  # over already
        except NotFound:
            pass  # a server without sessions: its tokens live until they expire
        finally:
            self.adopt(None)

    def change_password(self, old: str, new: str) -> Op[None]:
        yield from self.call(
            "POST",
            "password",
            retry=Retry.UNSENT,
            body={"old_password": old, "new_password": new},
        )

    def pages(
        self,
        path: str,
        params: dict[str, str],
        parse: Callable[[Any], T],
        *,
        backwards: bool = False,
    ) -> Op[None]:
        """Emit every item of a paged list, following its ``Link: rel="next"``; or,
        ``backwards``, its ``rel="prev"``, each page's items newest first."""
        rel = "prev" if backwards else "next"
        url: str | None = path
        query: dict[str, str] | None = params
        while url is not None:
            response = yield from self.call("GET", url, retry=Retry.SAFE, params=query)
            items = read(response, lambda page: [parse(each) for each in page])
            for item in reversed(items) if backwards else items:
                yield Emit(item)
            url, query = response.links.get(rel, {}).get("url"), None

    def users(self, page_size: int) -> Op[None]:
        yield from self.pages("get_users", {"limit": str(page_size)}, User.parse)

    def user(self, username: str) -> Op[User]:
        path = f"users/by-name/{quote(username, safe='')}"
        response = yield from self.call("GET", path, retry=Retry.SAFE)
        return read(response, User.parse)

    def user_by_id(self, user_id: int) -> Op[User]:
        response = yield from self.call("GET", f"users/{int(user_id)}", retry=Retry.SAFE)
        return read(response, User.parse)

    def user_id(self, user: int | str) -> Op[int]:
        """The id of a user given by id or by name."""
        if isinstance(user, bool) or not isinstance(user, int | str):
            raise TypeError(f"a user is an id (int) or a name (str), not {user!r}")
        if isinstance(user, int):
            return user
        return (yield from self.user(user)).id

    def send(
        self, to: int | str, content: str, *, deadline: float | None, key: str | None
    ) -> Op[Sent]:
        receiver_id = yield from self.user_id(to)
        response = yield from self.call(
            "POST",
            "send_message",
            retry=Retry.SAFE,
            deadline=deadline,
            body={"content": content, "receiver_id": receiver_id},
            # The same key on every attempt: the server answers a repeat with the first
            # answer, so a retried send is stored once.
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
        )
        replayed = response.headers.get("idempotency-replayed", "").lower() == "true"
        return read(response, Sent.parse, replayed=replayed)

    def messages(
        self,
        with_user: int | str | None,
        *,
        after: int | None,
        before: int | None,
        newest_first: bool,
        page_size: int,
    ) -> Op[None]:
        if after is not None and (before is not None or newest_first):
            raise ValueError("read on (after=) or back (before=, newest_first), not both")
        params = {"limit": str(page_size)}
        if with_user is not None:
            params["with_user"] = str((yield from self.user_id(with_user)))
        if after is not None:
            params["cursor"] = str(after)
        backwards = before is not None or newest_first
        if backwards:
            params["before"] = str(NEWEST_CURSOR if before is None else before)
        yield from self.pages("get_messages", params, Message.parse, backwards=backwards)

    def message(self, message_id: int) -> Op[Message]:
        response = yield from self.call("GET", f"messages/{int(message_id)}", retry=Retry.SAFE)
        return read(response, Message.parse)

    def find_user(self, user: int | str) -> Op[User | None]:
        """The user of that id or name; ``None`` where there is none (never registered,
        or erased: the server answers both alike)."""
        try:
            if isinstance(user, str):
                return (yield from self.user(user))
            return (yield from self.user_by_id((yield from self.user_id(user))))
        except NotFound:
            return None

    def delete_message(self, message_id: int) -> Op[None]:
        # Sent again only when it surely did not arrive: a repeat of a delete that
        # happened would be a 404, as if the message had never been there.
        yield from self.call("DELETE", f"messages/{int(message_id)}", retry=Retry.UNSENT)

    def block(self, user: int | str) -> Op[None]:
        user_id = yield from self.user_id(user)
        yield from self.call("PUT", f"blocks/{user_id}", retry=Retry.SAFE)

    def unblock(self, user: int | str) -> Op[None]:
        user_id = yield from self.user_id(user)
        yield from self.call("DELETE", f"blocks/{user_id}", retry=Retry.SAFE)

    def blocks(self) -> Op[list[Block]]:
        response = yield from self.call("GET", "blocks", retry=Retry.SAFE)
        return read(response, lambda items: [Block.parse(item) for item in items])

    def me(self) -> Op[Me]:
        response = yield from self.call("GET", "me", retry=Retry.SAFE)
        return read(response, Me.parse)

    def set_read_receipts(self, on: bool) -> Op[Me]:
        body = {"read_receipts": bool(on)}
        response = yield from self.call("PATCH", "me", retry=Retry.SAFE, body=body)
        return read(response, Me.parse)

    def delete_account(self, password: str) -> Op[None]:
        body = {"password": password}
        yield from self.call("DELETE", "me", retry=Retry.UNSENT, body=body)
        # The server ended every session of the account: nothing stored is of use.
        self.adopt(None)

    def mark_read(self, with_user: int | str, up_to: int) -> Op[None]:
        user_id = yield from self.user_id(with_user)
        body = {"up_to": int(up_to)}
        yield from self.call("POST", f"conversations/{user_id}/read", retry=Retry.SAFE, body=body)

    def conversations(self, limit: int) -> Op[list[Conversation]]:
        params = {"limit": str(limit)}
        response = yield from self.call("GET", "conversations", retry=Retry.SAFE, params=params)
        return read(response, lambda items: [Conversation.parse(item) for item in items])

    def events(self, cursor: int | None) -> Op[None]:
        """Emit the events of the stream after ``cursor``, for ever: reconnecting after
        the last event handed on whenever the stream ends or fails."""
        resume = _Resume(cursor, Backoff(base=1.0, cap=30.0))
        renewed = False
        while True:
            session = yield from self.fresh_session()
            request = self.request(
                "GET", "events", session=session, headers=resume.headers(), stream=True
            )
            try:
                response: httpx.Response = yield Call(request, stream=True)
            except httpx.TransportError:
                yield Pause(resume.backoff.next())
                continue
            if not response.is_success:
                error = error_from(response)
                if refuses_token(response):
                    if renewed or not self.renewable(session, error):
                        raise _expired(error)
                    renewed = True
                    yield Renew(session)
                elif isinstance(error, RateLimited | Unavailable):
                    yield Pause(max(error.retry_after or 0.0, resume.backoff.next()))
                else:
                    raise error
                continue
            renewed = False
            resume.backoff.reset()
            expired = False
            try:
                while (sse := (yield NextEvent())) is not None:
                    if sse.event == "reauthenticate":
                        expired = True
                        break
                    event = resume.take(sse)
                    if event is not None:
                        yield Emit(event)
            except httpx.TransportError:
                pass  # the connection failed: reconnect after the last event
            yield CloseStream()
            if not expired:
                yield Pause(resume.backoff.next())
            elif session.refresh_token is None:
                raise _expired()
            else:
                # The access token ran out: refresh it and go on at once.
                renewed = True
                yield Renew(session)


class Options(TypedDict, total=False):
    """What both clients are made with, beside the server's URL and the transport.

    ``session``: a session to start with (kept in memory); ``store``: where to keep the
    session instead (say :class:`~anonchat_client.sessions.CredentialsFile`);
    ``timeout``: seconds to connect and to wait for an answer (10); ``stream_timeout``:
    seconds of silence after which the event stream is deemed dead and resumed (45: the
    server sends a keep-alive every 15); ``retry_deadline``: seconds within which a
    call is retried (30; a send takes ``deadline=`` of its own)."""

    session: Session | None
    store: SessionStore | None
    timeout: float
    stream_timeout: float
    retry_deadline: float


class ClientBase(Generic[TransportT]):
    """What both clients are: a :class:`Core`, the properties over it, and the
    connections and the lock of their kind of I/O (``_connect``)."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        transport: TransportT | None = None,
        **options: Unpack[Options],
    ) -> None:
        store = options.get("store")
        self._core = Core(
            server=server,
            store=store if store is not None else MemoryStore(options.get("session")),
            timeout=options.get("timeout", 10.0),
            stream_timeout=options.get("stream_timeout", 45.0),
            retry_deadline=options.get("retry_deadline", 30.0),
        )
        self._connect(transport)

    def _connect(self, transport: TransportT | None) -> None:
        raise NotImplementedError

    @property
    def server(self) -> str:
        """The server's URL."""
        return str(self._core.server)

    @property
    def session(self) -> Session | None:
        """The session, once logged in."""
        return self._core.session

    def use_session(self, session: Session | None) -> None:
        """Use ``session`` from now on (one saved elsewhere, say), and store it."""
        self._core.adopt(session)
