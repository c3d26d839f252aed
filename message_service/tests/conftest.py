"""Fixtures of message_service's in-process tests: a client of the service, and users it
knows."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from message_service.tests.service import new_user_id
from tests.harness.apps import internal_client


@pytest.fixture
async def client(message_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with internal_client(message_app) as client:
        yield client


@pytest.fixture
def users(message_app: FastAPI) -> tuple[int, int, int]:
    """Three users message_service already knows exist."""
    ids = (new_user_id(), new_user_id(), new_user_id())
    for user_id in ids:
        message_app.state.service.users.remember(user_id)
    return ids
