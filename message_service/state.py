"""message_service's long-lived objects, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from common.users import KnownUsers
from message_service.config import Settings
from message_service.enqueue import Batcher
from message_service.ids import IdAllocator
from message_service.stream import Hub


@dataclass(frozen=True)
class MessageService:
    """What the routes use: the database, Redis, message ids, the receiver check, the
    queue and the event streams' hub."""

    settings: Settings
    engine: AsyncEngine
    redis: Redis
    ids: IdAllocator
    users: KnownUsers
    batcher: Batcher
    hub: Hub


def current(request: Request) -> MessageService:
    """The service's state. The send route calls this rather than take a dependency:
    every dependency costs each request (see ``common.bodies``)."""
    found: MessageService = request.app.state.service
    return found
