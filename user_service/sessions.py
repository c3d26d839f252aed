"""Sessions: a login starts one; its short-lived access tokens name it; its refresh tokens
(single use, kept as SHA-256 only) renew it; it ends on logout, on a password change (all
but the one that changed it), when a refresh token is used twice (stolen: the whole
session ends), and with its account. An ended session is announced to every gateway
(common/sessions.py), which then refuses its access tokens.

Service code flushes; the route's transaction commits. Ending sessions is announced
before the commit: if Redis cannot take it, the request fails and nothing ends, so no
session is ended in Postgres while its tokens still pass the gateways.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.schemas import AccessToken
from common.sessions import announce_ended
from common.tokens import issue_token
from user_service.config import Settings
from user_service.models import RefreshToken, Session

SESSION_ENDED = "the session has ended: log in again"


@dataclass(frozen=True)
class Sessions:
    """What sessions need: the settings (secret, lifetimes) and Redis to announce ends."""

    settings: Settings
    redis: Redis

    @property
    def announced_for(self) -> float:
        """How long an ended session must be refused: as long as its access tokens live."""
        return self.settings.access_token_ttl_seconds + 60


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start(*, db: AsyncSession, sessions: Sessions, user_id: int) -> AccessToken:
    """A new session for ``user_id``, and its first tokens."""
    session = Session(user_id=user_id, refresh_expires_at=_refresh_expiry(sessions.settings))
    db.add(session)
    await db.flush()
    return await _issue(db, sessions.settings, session)


async def refresh(*, db: AsyncSession, sessions: Sessions, token: str) -> AccessToken | None:
    """New tokens for the session ``token`` renews, spending ``token``; None when it
    renews nothing (unknown, expired, of an ended session, or used already: then its
    whole session ends)."""
    row = (
        await db.execute(
            select(RefreshToken, Session)
            .join(Session, RefreshToken.session_id == Session.id)
            .where(RefreshToken.hash == _hash(token))
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    spent, session = row
    if spent.used_at is not None:
        await end(db=db, sessions=sessions, session_ids=[session.id])
        return None
    now = datetime.now(UTC)
    if session.ended_at is not None or session.refresh_expires_at <= now:
        return None
    spent.used_at = now
    session.refresh_expires_at = _refresh_expiry(sessions.settings)
    return await _issue(db, sessions.settings, session)


async def end(*, db: AsyncSession, sessions: Sessions, session_ids: Sequence[uuid.UUID]) -> None:
    """End these sessions: announced to the gateways, then gone with their refresh tokens."""
    if not session_ids:
        return
    await announce_ended(
        sessions.redis, (str(i) for i in session_ids), keep_seconds=sessions.announced_for
    )
    await db.execute(delete(Session).where(Session.id.in_(session_ids)))


async def of_user(db: AsyncSession, user_id: int) -> list[uuid.UUID]:
    """The ids of every session of ``user_id``."""
    rows = await db.execute(select(Session.id).where(Session.user_id == user_id))
    return list(rows.scalars())


async def _issue(db: AsyncSession, settings: Settings, session: Session) -> AccessToken:
    renewal = secrets.token_urlsafe(32)
    db.add(RefreshToken(hash=_hash(renewal), session_id=session.id))
    # Spent tokens are kept while a reuse could still come (their session's lifetime).
    await db.execute(
        delete(RefreshToken).where(
            RefreshToken.session_id == session.id,
            RefreshToken.used_at
            < datetime.now(UTC) - timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    access = issue_token(
        secret=settings.jwt_secret.get_secret_value(),
        user_id=session.user_id,
        ttl_seconds=settings.access_token_ttl_seconds,
        session_id=str(session.id),
    )
    return AccessToken(
        access_token=access,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=renewal,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )


def _refresh_expiry(settings: Settings) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds)
