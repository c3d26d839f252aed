"""Helpers for talking to the real gateway as a client would."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from tests.fixtures import unique_name

PASSWORD = "correct horse battery"
T = TypeVar("T")


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
