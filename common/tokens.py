"""Access tokens: signed by user_service at login, verified by the gateway on every call."""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple

import jwt

ISSUER = "anonchat"
ALGORITHMS = ["HS256"]


class InvalidToken(Exception):
    """The token is malformed, tampered with, signed with another key or expired."""


def issue_token(
    *, secret: str, user_id: int, ttl_seconds: int, session_id: str | None = None
) -> str:
    """A signed token naming ``user_id`` (and the session it belongs to), valid for
    ``ttl_seconds``."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iss": ISSUER,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm=ALGORITHMS[0])


class Claims(NamedTuple):
    """What a valid token says: whose it is, until when (epoch seconds), and of which
    session (tokens from before sessions name none)."""

    user_id: int
    expires: float
    session_id: str | None = None


def verify_token(*, secret: str, token: str) -> Claims:
    """The claims of a valid token; :class:`InvalidToken` for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            issuer=ISSUER,
            options={"require": ["sub", "iss", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.isdigit():
        raise InvalidToken("token subject is not a user id")
    session = claims.get("sid")
    if session is not None and not isinstance(session, str):
        raise InvalidToken("token session is not an id")
    return Claims(int(subject), float(claims["exp"]), session)
