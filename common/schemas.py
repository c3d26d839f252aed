"""The public wire contract: request and response bodies the gateway documents and the
owning services validate, defined once."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

USERNAME_MIN, USERNAME_MAX = 3, 32
PASSWORD_MAX = 128
MAX_BIGINT = 2**63 - 1
_USERNAME = re.compile(r"[A-Za-z0-9_.-]+")


def _check_username(value: str) -> str:
    if not USERNAME_MIN <= len(value) <= USERNAME_MAX:
        raise ValueError(f"must be {USERNAME_MIN} to {USERNAME_MAX} characters long")
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            "may contain only Latin letters, digits, '_', '.' and '-' "
            "(no spaces, no look-alike letters from other alphabets)"
        )
    return value


Username = Annotated[
    str,
    Field(
        description=(
            f"{USERNAME_MIN} to {USERNAME_MAX} Latin letters, digits, '_', '.', '-'; "
            "unique regardless of case"
        ),
        examples=["alice"],
    ),
    AfterValidator(_check_username),
]


def _check_password(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) > PASSWORD_MAX:
        raise ValueError(f"must be at most {PASSWORD_MAX} characters long")
    return value


Password = Annotated[
    SecretStr,
    Field(description=f"8 to {PASSWORD_MAX} characters (the minimum is configurable)"),
    AfterValidator(_check_password),
]
UserId = Annotated[int, Field(strict=True, ge=1, le=MAX_BIGINT, examples=[2])]


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
    """A signed, expiring bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
