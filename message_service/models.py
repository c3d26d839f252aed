"""The messages database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    LargeBinary,
    Sequence,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import metadata


class Base(DeclarativeBase):
    metadata = metadata()


# The storage cursor: messages and events take theirs from it, under the cursor lock
# (message_service/persistence/store.py), so that cursor order is commit order.
CURSORS = Sequence("cursors", metadata=Base.metadata)


class Message(Base):
    """A direct message.

    ``id`` is assigned by message_service when it accepts the send. ``seq``, its cursor,
    is assigned when the worker stores it, under a lock, so that cursor order is commit
    order: a reader paging by cursor can never skip a message that commits late.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=CURSORS.next_value(), unique=True)
    content: Mapped[str] = mapped_column(Text)
    sender_id: Mapped[int] = mapped_column(BigInteger)
    receiver_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    persisted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # SHA-256 of the send's Idempotency-Key: a repeat of a stored send is answered from here.
    idempotency_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Sent by someone the receiver had blocked: never shown to the receiver.
    hidden: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # When the receiver read it, if the receiver sends read receipts.
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_messages_sender_seq", "sender_id", "seq"),
        Index("ix_messages_receiver_seq", "receiver_id", "seq"),
        Index(
            "uq_messages_sender_id_idempotency_key",
            "sender_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # One conversation, whoever sent each message.
        Index(
            "ix_messages_conversation_seq",
            func.least(sender_id, receiver_id),
            func.greatest(sender_id, receiver_id),
            "seq",
        ),
    )


class IdBlock(Base):
    """The next message id no replica has taken yet; replicas take blocks of ids."""

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    next_id: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """Something a user's stream tells, beside the messages: one row per user told.
    ``message_id`` names the message it is about, if any (each is told once)."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, server_default=CURSORS.next_value()
    )
    user_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The other user the event is about (a reader, for ``read``).
    other_id: Mapped[int | None] = mapped_column(BigInteger)
    # The event's JSON, as the stream sends it.
    data: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_events_user_id_seq", "user_id", "seq"),
        Index(
            "uq_events_message_id_user_id_kind",
            "message_id",
            "user_id",
            "kind",
            unique=True,
            postgresql_where=text("message_id IS NOT NULL"),
        ),
    )


class Block(Base):
    """``blocker_id`` blocks ``blocked_id``: messages accepted from then on never reach it."""

    __tablename__ = "blocks"

    blocker_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    blocked_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Preferences(Base):
    """A user's choices about their messages (none stored: every choice at its default)."""

    __tablename__ = "preferences"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    read_receipts: Mapped[bool] = mapped_column(Boolean, server_default=false())


class ReadMark(Base):
    """How far ``reader_id`` has read its conversation with ``other_id`` (a cursor)."""

    __tablename__ = "read_marks"

    reader_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    other_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    up_to: Mapped[int] = mapped_column(BigInteger)
