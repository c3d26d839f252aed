"""Helpers of message_service's in-process tests: users and sends."""

import uuid
from collections.abc import Mapping
from typing import Any

import httpx


def new_user_id() -> int:
    return uuid.uuid4().int % 10**12 + 10**12


def as_user(user_id: int) -> dict[str, str]:
    return {"x-user-id": str(user_id)}


async def send(
    client: httpx.AsyncClient,
    sender: int,
    receiver: int,
    content: str = "hi",
    headers: Mapping[str, Any] | None = None,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/messages",
        json={"content": content, "receiver_id": receiver, **extra},
        headers={**as_user(sender), **(headers or {})},
    )
