"""What the server answers, as typed values (parsed once, here, for both clients)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class User:
    """A user as everyone sees them: an id and a name."""

    id: int
    username: str

    @classmethod
    def parse(cls, data: Any) -> User:
        return cls(id=int(data["id"]), username=str(data["username"]))


@dataclass(frozen=True)
class Message:
    """A message the caller sent or received.

    ``cursor`` is its place in storage order (``None`` while it is queued); ``status``
    is known when the message was read alone (``Client.message``): ``queued``,
    ``persisted`` or ``failed``; ``read_at`` is set once the receiver read it, where
    both users share read receipts."""

    id: int
    content: str
    sender_id: int
    receiver_id: int
    created_at: datetime
    cursor: int | None = None
    status: str | None = None
    read_at: datetime | None = None

    @classmethod
    def parse(cls, data: Any) -> Message:
        cursor, read_at = data.get("cursor"), data.get("read_at")
        return cls(
            id=int(data["id"]),
            content=str(data["content"]),
            sender_id=int(data["sender_id"]),
            receiver_id=int(data["receiver_id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            cursor=None if cursor is None else int(cursor),
            status=data.get("status"),
            read_at=None if read_at is None else datetime.fromisoformat(read_at),
        )


@dataclass(frozen=True)
class Sent:
    """The answer to a send: the message's final id; it is queued, not yet stored.
    ``replayed`` says the server had already accepted this send (a retry)."""

    id: int
    sender_id: int
    receiver_id: int
    created_at: datetime
    status: str = "queued"
    replayed: bool = False

    @classmethod
    def parse(cls, data: Any, *, replayed: bool) -> Sent:
        return cls(
            id=int(data["id"]),
            sender_id=int(data["sender_id"]),
            receiver_id=int(data["receiver_id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            status=str(data.get("status", "queued")),
            replayed=replayed,
        )


@dataclass(frozen=True)
class Me:
    """The caller's account and preferences: ``read_receipts`` says whether it sends
    (and so sees) read receipts."""

    id: int
    username: str
    read_receipts: bool

    @classmethod
    def parse(cls, data: Any) -> Me:
        return cls(
            id=int(data["id"]),
            username=str(data["username"]),
            read_receipts=bool(data["read_receipts"]),
        )


@dataclass(frozen=True)
class Block:
    """Someone the caller blocks, and since when."""

    user_id: int
    blocked_at: datetime

    @classmethod
    def parse(cls, data: Any) -> Block:
        return cls(
            user_id=int(data["user_id"]), blocked_at=datetime.fromisoformat(data["blocked_at"])
        )


@dataclass(frozen=True)
class Conversation:
    """One of the caller's conversations: the other user, the cursor of its latest
    message, and how many messages the caller received there since its read mark."""

    user_id: int
    last_cursor: int
    unread: int

    @classmethod
    def parse(cls, data: Any) -> Conversation:
        return cls(
            user_id=int(data["user_id"]),
            last_cursor=int(data["last_cursor"]),
            unread=int(data["unread"]),
        )


@dataclass(frozen=True)
class Session:
    """A login: the access token, and the refresh token that renews it where the server
    issues one. Times are epoch seconds. ``username`` and ``user_id`` say whose it is
    (the login answer does not carry the id: whoever knows it may set it)."""

    access_token: str
    expires_at: float
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    username: str | None = None
    user_id: int | None = None

    @classmethod
    def parse(cls, data: Any, *, now: float, username: str | None) -> Session:
        refresh_in = data.get("refresh_expires_in")
        return cls(
            access_token=str(data["access_token"]),
            expires_at=now + float(data["expires_in"]),
            refresh_token=data.get("refresh_token"),
            refresh_expires_at=None if refresh_in is None else now + float(refresh_in),
            username=username,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at,
            "username": self.username,
            "user_id": self.user_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> Session:
        return cls(
            access_token=str(data["access_token"]),
            expires_at=float(data["expires_at"]),
            refresh_token=data.get("refresh_token"),
            refresh_expires_at=data.get("refresh_expires_at"),
            username=data.get("username"),
            user_id=data.get("user_id"),
        )

    def expires_within(self, seconds: float) -> bool:
        """Whether the access token expires within ``seconds`` from now."""
        return self.expires_at - time.time() < seconds


# Events of the stream. ``cursor`` is the event's id (resume after it); only events
# without one (none today) have ``None``.


@dataclass(frozen=True)
class MessageEvent:
    """A message the caller sent or received has been stored."""

    cursor: int | None
    message: Message


@dataclass(frozen=True)
class FailedEvent:
    """A message the caller sent was refused for good by the database."""

    cursor: int | None
    id: int
    receiver_id: int
    reason: str


@dataclass(frozen=True)
class DeletedEvent:
    """A message of one of the caller's conversations was deleted by its sender."""

    cursor: int | None
    id: int
    sender_id: int
    receiver_id: int


@dataclass(frozen=True)
class ReadEvent:
    """The other side read the conversation up to a cursor."""

    cursor: int | None
    reader_id: int
    up_to: int
    read_at: datetime


@dataclass(frozen=True)
class OtherEvent:
    """An event this version of the client does not know, as it came."""

    cursor: int | None
    name: str
    data: Any = field(default=None)


Event = MessageEvent | FailedEvent | DeletedEvent | ReadEvent | OtherEvent


def parse_event(name: str, cursor: int | None, data: Any) -> Event:
    """The typed event for one event of the stream."""
    if name == "message":
        return MessageEvent(cursor, Message.parse(data))
    if name == "failed":
        return FailedEvent(cursor, int(data["id"]), int(data["receiver_id"]), str(data["reason"]))
    if name == "deleted":
        return DeletedEvent(
            cursor, int(data["id"]), int(data["sender_id"]), int(data["receiver_id"])
        )
    if name == "read":
        return ReadEvent(
            cursor,
            int(data["reader_id"]),
            int(data["up_to"]),
            datetime.fromisoformat(data["read_at"]),
        )
    return OtherEvent(cursor, name, data)
