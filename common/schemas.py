"""The public wire contract: request and response bodies the gateway documents and the
owning services validate, defined once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

USERNAME_MIN, USERNAME_MAX = 3, 32
# The minimum is user_service's setting; the gateway documents the one it is given.
PASSWORD_MIN_DEFAULT, PASSWORD_MAX = 8, 128
CONTENT_MAX_DEFAULT = 4000
MAX_BIGINT = 2**63 - 1
# Text the services store: no NUL (Postgres text cannot hold it). A JSON Schema pattern
# (ECMA 262): the documented form of _check_text, which also refuses unpaired surrogates,
# which no JSON Schema validator can even be given.
NO_NUL = "^[^\\u0000]*$"
# At least one character that is not white space as Python's str.strip() sees it (the
# list is spelled out: ECMA 262's \s is another set), and no NUL.
_WHITE = "\\t-\\r\\u001c- \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{_WHITE}][^\\u0000]*$"


def _check_username(value: str) -> str:
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise ValueError(f"must be {USERNAME_MIN} to {USERNAME_MAX} characters long")
    return _check_text(value)


# What a name may hold beyond its length is user_service's to say (user_service/names.py:
# PRECIS, scripts, look-alikes): those rules need Unicode data a schema cannot carry, so
# the document names them with a format of its own (OpenAPI formats are open).
USERNAME_FORMAT = "precis-username"
Username = Annotated[
    str,
    Field(
        description=(
            f"{USERNAME_MIN} to {USERNAME_MAX} letters and digits of any script, '_', '.', "
            "'-'; one script (or Latin with Han, kana, Bopomofo or Hangul); unique regardless "
            "of case, and not like a taken name (format precis-username: RFC 8265's "
            "UsernameCasePreserved profile, and the rules above)"
        ),
        examples=["alice", "Глеб"],
        json_schema_extra={
            "format": USERNAME_FORMAT,
            "minLength": USERNAME_MIN,
            "maxLength": USERNAME_MAX,
        },
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
    Field(
        description=f"{PASSWORD_MIN_DEFAULT} to {PASSWORD_MAX} characters (the minimum is "
        "configurable, and this document says the one configured); no NUL",
        json_schema_extra={
            "minLength": PASSWORD_MIN_DEFAULT,
            "maxLength": PASSWORD_MAX,
            "pattern": NO_NUL,
        },
    ),
    AfterValidator(_check_password),
]


def _integral(value: object) -> object:
    """JSON Schema's integers include 2.0 (RFC 8259 numbers have no integer type), so the
    API takes it as 2; 2.5, "2" and true stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


UserId = Annotated[
    int, Field(strict=True, ge=1, le=MAX_BIGINT, examples=[2]), BeforeValidator(_integral)
]
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
        description=f"the text: not only white space, no NUL; at most {CONTENT_MAX_DEFAULT} "
        "characters by default (configurable, and this document says the limit configured)",
        examples=["Привет!"],
        json_schema_extra={"minLength": 1, "maxLength": CONTENT_MAX_DEFAULT, "pattern": NOT_BLANK},
    ),
    AfterValidator(_check_content),
]


IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENCY_KEY_HELP = "repeat a send safely: the same key returns the first answer"
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDEMPOTENCY_KEY_MAX,
    # Spaces only inside: HTTP takes those around a header's value off.
    "pattern": "^[!-~]([ -~]*[!-~])?$",
    "description": f"1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
}


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
    read_at: datetime | None = Field(
        None,
        description="when the receiver read it; shown only when both the caller and the "
        "receiver send read receipts",
    )


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


class BlockRead(BaseModel):
    """Someone the caller blocks, and since when."""

    user_id: int
    blocked_at: datetime


class ReadUpTo(BaseModel):
    """The body of ``/conversations/{user_id}/read``."""

    up_to: Annotated[
        int,
        Field(strict=True, ge=0, le=MAX_BIGINT, description="the cursor of the last message read"),
        BeforeValidator(_integral),
    ]


class ConversationRead(BaseModel):
    """One of the caller's conversations."""

    user_id: int = Field(description="the other user")
    last_cursor: int = Field(description="the cursor of its latest message")
    unread: int = Field(description="messages received since the caller's read mark")


class MessageDeleted(BaseModel):
    """The data of ``event: deleted``: a message its sender took back."""

    id: int
    sender_id: int
    receiver_id: int


class MessagesRead(BaseModel):
    """The data of ``event: read``, to a sender: the receiver read up to a cursor."""

    reader_id: int
    up_to: int = Field(description="the cursor of the last message read")
    read_at: datetime


class PreferencesUpdate(BaseModel):
    """The body of ``PATCH /me``."""

    read_receipts: bool = Field(
        strict=True,
        description="send read receipts, and see them (both sides must have them on)",
    )


class PreferencesRead(PreferencesUpdate):
    """The caller's preferences."""


class Me(PreferencesRead):
    """The caller: its account and its preferences."""

    id: int
    username: str


class PasswordConfirmation(BaseModel):
    """The body of ``DELETE /me``: the password, once more."""

    password: Password
