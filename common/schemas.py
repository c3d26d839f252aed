"""The public wire contract: request and response bodies the gateway documents and the
owning services validate, defined once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

USERNAME_MIN, USERNAME_MAX = 3, 32
PASSWORD_MAX = 128
MAX_BIGINT = 2**63 - 1
def _check_username(value: str) -> str:
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise ValueError(f"must be {USERNAME_MIN} to {USERNAME_MAX} characters long")
    return _check_text(value)


# What a name may hold beyond its length is user_service's to say (user_service/names.py:
# PRECIS, scripts, look-alikes): those rules need Unicode data a schema cannot carry.
Username = Annotated[
    str,
    Field(
        description=(
            f"{USERNAME_MIN} to {USERNAME_MAX} letters and digits of any script, '_', '.', "
            "'-'; one script (or Latin with Han, kana, Bopomofo or Hangul); unique regardless "
            "of case, and not like a taken name"
        ),
        examples=["alice", "Глеб"],
    ),
    AfterValidator(_check_username),
]


def _check_text(value: str) -> str:
    """Text Postgres and the hashers can take: no NUL, no unpaired surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from exc
    return value


def _check_password(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) > PASSWORD_MAX:
        raise ValueError(f"must be at most {PASSWORD_MAX} characters long")
    _check_text(value.get_secret_value())
    return value


Password = Annotated[
    SecretStr,
    Field(description=f"8 to {PASSWORD_MAX} characters (the minimum is configurable)"),
    AfterValidator(_check_password),
]
UserId = Annotated[int, Field(strict=True, ge=1, le=MAX_BIGINT, examples=[2])]
PageLimit = Annotated[int, Query(ge=1, le=1000, description="page size")]


class Credentials(BaseModel):
    """A username and a password: the body of ``/register`` and ``/login``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "alice", "password": "correct horse"}]}
    )

    username: Username
    password: Password


class UserRead(BaseModel):
    """A user as others see it: never a password or a hash."""

    id: int
    username: str


class UserRegistered(UserRead):
    """The answer to a registration."""

    message: Literal["User registered successfully"] = "User registered successfully"


class AccessToken(BaseModel):
    """A session's tokens: a short-lived bearer token, and the single-use token that
    renews it (``POST /token/refresh``)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_token: str = Field(
        description="single use: renews the access token; a second use ends the session"
    )
    refresh_expires_in: int = Field(description="seconds until the refresh token expires")


REFRESH_TOKEN_MAX = 100


class Refresh(BaseModel):
    """The body of ``/token/refresh``."""

    refresh_token: str = Field(min_length=1, max_length=REFRESH_TOKEN_MAX)


class PasswordChange(BaseModel):
    """The body of ``/password``: the current password, and the new one."""

    old_password: Password
    new_password: Password


def _check_content(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return _check_text(value)


Content = Annotated[
    str,
    Field(
        strict=True,
        description="the text; not empty, at most 4000 characters by default (configurable)",
        examples=["Привет!"],
    ),
    AfterValidator(_check_content),
]


IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENCY_KEY_HELP = "repeat a send safely: the same key returns the first answer"


class SendMessage(BaseModel):
    """A message to send: the sender is always the caller."""

    content: Content
    receiver_id: UserId
    sender_id: UserId | None = Field(
        None, description="optional; when given it must be the caller's own id"
    )


class MessageRead(BaseModel):
    """A stored message, as its sender and receiver see it."""

    id: int
    cursor: int = Field(
        description="its place in storage order: read on after it with `cursor=` or `Last-Event-ID`"
    )
    content: str
    sender_id: int
    receiver_id: int
    created_at: datetime = Field(description="when the message was accepted")


class MessageQueued(BaseModel):
    """The answer to a send: the message's final id; it is queued, not yet stored."""

    id: int
    status: Literal["queued"] = "queued"
    message: Literal["Message sent successfully"] = "Message sent successfully"
    sender_id: int
    receiver_id: int
    created_at: datetime


class MessageStatus(MessageRead):
    """A message and where it is on its way to the database."""

    cursor: int | None = Field(  # type: ignore[assignment]
        None, description="its place in storage order; null until it is stored"
    )
    status: Literal["queued", "persisted", "failed"]


class SampleMessage(BaseModel):
    """The original design's fixed sample message."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from", serialization_alias="from")
    message: str


class SampleReceived(BaseModel):
    """The answer of ``/receive_message``, for smoke tests."""

    status: Literal["Message received"] = "Message received"
    message: SampleMessage
