"""Names for the ids in messages, and ids for the names a person types, looked up once
per run."""

from __future__ import annotations

from anonchat_client._client import Client
from anonchat_client._errors import NotFound
from anonchat_client._models import User


class Directory:
    """The users this run has met (``GET /users/by-name/…``, ``GET /users/{id}``)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._names: dict[int, str | None] = {}

    def remember(self, user: User) -> User:
        self._names[user.id] = user.username
        return user

    def by_name(self, name: str) -> User:
        """The user called ``name`` (in any letter case); :class:`NotFound` saying so if
        there is none."""
        found = self.client.find_user(name)
        if found is None:
            raise NotFound(f"no user named {name!r}", code="not_found", status=404)
        return self.remember(found)

    def name_of(self, user_id: int) -> str | None:
        """The name of ``user_id``; ``None`` for an account that is gone (erased)."""
        if user_id not in self._names:
            found = self.client.find_user(user_id)
            self._names[user_id] = None if found is None else found.username
        return self._names[user_id]
