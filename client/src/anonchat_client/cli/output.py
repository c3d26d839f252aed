"""What the command line prints: lines for a person (who, when, what), or one JSON
object a line for scripts."""

from __future__ import annotations

import json
from typing import Any

import click

from anonchat_client._models import Message, Sent, User


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

    def message(self, message: Message, *, sender: str, receiver: str, conversation: bool) -> None:
        """A message: in a conversation only its sender is named, else both sides."""
        when = message.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        who = sender if conversation else f"{sender} → {receiver}"
        data = {
            "id": message.id,
            "cursor": message.cursor,
            "sender_id": message.sender_id,
            "sender": sender,
            "receiver_id": message.receiver_id,
            "receiver": receiver,
            "content": message.content,
            "created_at": message.created_at.isoformat(),
        }
        if message.status is not None:
            data["status"] = message.status
        self.emit(data, f"{when}  {who}: {message.content}")

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

    def done(self, what: str, **data: Any) -> None:
        """An action that has no result but its success."""
        self.emit({"ok": True, **data}, what)
