"""The users database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import metadata


class Base(DeclarativeBase):
    metadata = metadata()


class User(Base):
    """A registered user: a name and a password hash, nothing that identifies a person."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # "Alice" and "alice" are one name.
        Index("uq_users_username_lower", func.lower(username), unique=True),
    )
