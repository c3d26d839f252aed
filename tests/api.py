"""Helpers for talking to the real gateway as a client would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

PASSWORD = "correct horse battery"
T = TypeVar("T")


def unique_name(prefix: str = "u") -> str:
    """A username no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class User:
    id: int
    name: str
    headers: dict[str, str]


def register(gateway: httpx.Client, name: str) -> httpx.Response:
    return gateway.post("/register", json={"username": name, "password": PASSWORD})


def login(gateway: httpx.Client, name: str) -> dict[str, str]:
    response = gateway.post("/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_user(gateway: httpx.Client, prefix: str = "u") -> User:
    name = unique_name(prefix)
    response = register(gateway, name)
    assert response.status_code == 201, response.text
    return User(response.json()["id"], name, login(gateway, name))


def eventually(
    check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


def all_pages(gateway: httpx.Client, url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    """Every item of a paged list, following the Link headers."""
    items: list[dict[str, object]] = []
    next_url: str | None = url
    while next_url:
        response = gateway.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        items += response.json()
        next_url = response.links.get("next", {}).get("url")
    return items


def send(gateway: httpx.Client, sender: User, receiver_id: int, content: str, **headers: str):
    """``sender`` sends ``content`` to ``receiver_id`` (``headers`` added to its token)."""
    return gateway.post(
        "/send_message",
        json={"content": content, "receiver_id": receiver_id},
        headers={**sender.headers, **headers},
    )


def wait_persisted(
    gateway: httpx.Client, reader: User, message_id: int, *, timeout: float = 10.0
) -> dict[str, object]:
    """The message as ``reader`` sees it once a worker has stored it."""

    def persisted() -> dict[str, object] | None:
        found: dict[str, object] = gateway.get(
            f"/messages/{message_id}", headers=reader.headers
        ).json()
        return found if found.get("status") == "persisted" else None

    return eventually(persisted, timeout=timeout)
