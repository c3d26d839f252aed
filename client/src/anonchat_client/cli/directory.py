"""Names for the ids in messages, and ids for the names a person types, looked up once
per run."""

from __future__ import annotations

from collections.abc import Callable

from anonchat_client._client import Client
from anonchat_client._errors import NotFound
from anonchat_client._models import User

# How the gateway words a 404 for a path it has no route for (rather than for a user it
# does not know): a server older than the look-ups by name and by id.
_NO_ROUTE = "no such endpoint"


def _no_route(error: NotFound) -> bool:
    return error.detail.startswith(_NO_ROUTE)


class Directory:
    """The users this run has met. Looks users up by name and by id where the server
    can (``GET /users/by-name/…``, ``GET /users/{id}``); a server without those
    endpoints is read once through the list of everyone instead."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._names: dict[int, str] = {}
        self._everyone: list[User] | None = None

    def remember(self, user: User) -> User:
        self._names[user.id] = user.username
        return user

    def by_name(self, name: str) -> User:
        """The user called ``name``; :class:`NotFound` saying so if there is none."""
        found = self._look_up(
            lambda: self.client.user(name),
            lambda user: user.username.casefold() == name.casefold(),
        )
        if found is None:
            raise NotFound(f"no user named {name!r}", code="not_found", status=404)
        return found

    def name_of(self, user_id: int) -> str:
        """The name of ``user_id`` (``#id`` for an account that is gone)."""
        if user_id not in self._names:
            found = self._look_up(
                lambda: self.client.user_by_id(user_id), lambda user: user.id == user_id
            )
            self._names[user_id] = found.username if found is not None else f"#{user_id}"
        return self._names[user_id]

    def _look_up(self, direct: Callable[[], User], match: Callable[[User], bool]) -> User | None:
        if self._everyone is None:
            try:
                return self.remember(direct())
            except NotFound as exc:
                if not _no_route(exc):
                    return None
            self._everyone = [self.remember(user) for user in self.client.users(page_size=1000)]
        return next((user for user in self._everyone if match(user)), None)
