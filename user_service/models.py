"""The users database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    LargeBinary,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import metadata


class Base(DeclarativeBase):
    metadata = metadata()


class User(Base):
    """A registered user: a name and a password hash, nothing that identifies a person.

    ``canonical`` is the name as compared ("Alice" and "alice" are one name), ``skeleton``
    what it looks like (user_service/names.py); names that look alike are refused when
    registered, but names from before that rule may share one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    canonical: Mapped[str] = mapped_column(Text, unique=True)
    skeleton: Mapped[str] = mapped_column(Text, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReservedName(Base):
    """The look of an erased account's name, which nobody may register until ``until``."""

    __tablename__ = "reserved_names"

    skeleton: Mapped[str] = mapped_column(Text, primary_key=True)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Session(Base):
    """A login: its access tokens name it, and it ends on logout, on a password change
    (all but the one that changed it), on a reused refresh token, or with its user."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    refresh_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    """A refresh token of a session, kept as its SHA-256 only. Each is single use: a
    second use means it was stolen, and ends its session."""

    __tablename__ = "refresh_tokens"

    hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
