"""What the command line prints: lines for a person (who, when, what), or one JSON
object a line for scripts. A name that is ``None`` is an erased account: "deleted
account" for a person, ``null`` in JSON."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from anonchat_client._models import (
    Block,
    Conversation,
    DeletedEvent,
    Me,
    Message,
    ReadEvent,
    Sent,
    User,
)

DELETED_ACCOUNT = "deleted account"


def _person(name: str | None) -> str:
    return DELETED_ACCOUNT if name is None else name


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


class Output:
    """Prints results to stdout, as text or JSON lines (``--json``)."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: dict[str, Any], text: str) -> None:
        """One result: ``data`` as a JSON line, else ``text``."""
        if self.as_json:
            click.echo(json.dumps(data, ensure_ascii=False, default=str))
        else:
            click.echo(text)

    def user(self, user: User) -> None:
        self.emit({"id": user.id, "username": user.username}, f"{user.id:>6}  {user.username}")

    @staticmethod
    def line(
        message: Message, *, sender: str | None, receiver: str | None, conversation: bool
    ) -> str:
        """A message for a person: in a conversation only its sender is named, else both."""
        who = _person(sender) if conversation else f"{_person(sender)} → {_person(receiver)}"
        return f"{_when(message.created_at)}  {who}: {message.content}"

    def message(
        self,
        message: Message,
        *,
        sender: str | None,
        receiver: str | None,
        conversation: bool,
        with_id: bool = False,
    ) -> None:
        """A message; ``with_id`` puts its id first (what ``anonchat delete`` takes), and
        one its receiver has read says so."""
        data = {
            "id": message.id,
            "cursor": message.cursor,
            "sender_id": message.sender_id,
            "sender": sender,
            "receiver_id": message.receiver_id,
            "receiver": receiver,
            "content": message.content,
            "created_at": message.created_at.isoformat(),
            "read_at": None if message.read_at is None else message.read_at.isoformat(),
        }
        if message.status is not None:
            data["status"] = message.status
        text = self.line(message, sender=sender, receiver=receiver, conversation=conversation)
        if with_id:
            text = f"{message.id:>6}  {text}"
        if message.read_at is not None:
            text += "  ✓ read"
        self.emit(data, text)

    def deleted(
        self,
        event: DeletedEvent,
        message: Message | None,
        *,
        sender: str | None,
        receiver: str | None,
        conversation: bool,
    ) -> None:
        """A message its sender deleted: its line again, marked, where it was shown."""
        data = {
            "event": "deleted",
            "id": event.id,
            "sender_id": event.sender_id,
            "sender": sender,
            "receiver_id": event.receiver_id,
            "receiver": receiver,
        }
        if message is not None:
            shown = self.line(message, sender=sender, receiver=receiver, conversation=conversation)
            text = f"[deleted] {shown}"
        else:
            text = f"[deleted] a message from {_person(sender)} (message {event.id})"
        self.emit(data, text)

    def read(self, event: ReadEvent, message: Message | None, *, reader: str | None) -> None:
        """The other side read the conversation (up to ``message``, where it was shown)."""
        data = {
            "event": "read",
            "reader_id": event.reader_id,
            "reader": reader,
            "up_to": event.up_to,
            "read_at": event.read_at.isoformat(),
        }
        text = f"{_when(event.read_at)}  ✓ read by {_person(reader)}"
        if message is not None:
            text += f" up to: {message.content}"
        self.emit(data, text)

    def sent(self, sent: Sent, *, receiver: str) -> None:
        data = {
            "id": sent.id,
            "status": sent.status,
            "sender_id": sent.sender_id,
            "receiver_id": sent.receiver_id,
            "receiver": receiver,
            "created_at": sent.created_at.isoformat(),
        }
        self.emit(data, f"sent to {receiver} (message {sent.id}, {sent.status})")

    def conversation(self, conversation: Conversation, *, name: str | None) -> None:
        data = {
            "user_id": conversation.user_id,
            "username": name,
            "last_cursor": conversation.last_cursor,
            "unread": conversation.unread,
        }
        self.emit(data, f"{conversation.unread:>6} unread  {_person(name)}")

    def block(self, block: Block, *, name: str | None) -> None:
        data = {
            "user_id": block.user_id,
            "username": name,
            "blocked_at": block.blocked_at.isoformat(),
        }
        self.emit(data, f"{_person(name)}  blocked since {_when(block.blocked_at)}")

    def receipts(self, me: Me) -> None:
        state = "on" if me.read_receipts else "off"
        self.emit({"read_receipts": me.read_receipts}, f"read receipts are {state}")

    def done(self, what: str, **data: Any) -> None:
        """An action that has no result but its success."""
        self.emit({"ok": True, **data}, what)
