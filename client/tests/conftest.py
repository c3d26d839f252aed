"""Fixtures of the client's tests: the session's real stack (tests/harness), accounts on
it, and each test run twice, with ``Client`` and with ``AsyncClient``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from anonchat_client import Client
from client.tests.support import Account, Either
from tests.api import PASSWORD, unique_name
from tests.harness.stack import RunningStack


@pytest.fixture
def server(running_stack: RunningStack) -> str:
    """The gateway's URL."""
    return running_stack.gateway_url


@pytest.fixture
def account(server: str) -> Callable[[], Account]:
    """Registers a new user on each call."""

    def register() -> Account:
        with Client(server) as client:
            return Account(client.register(unique_name("c"), PASSWORD), PASSWORD)

    return register


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest, server: str):
    """Opens clients of the kind the test runs with (closed after the test)."""
    opened: list[Either] = []

    def open_client(**options: Any) -> Either:
        opened.append(Either(request.param, server, **options))
        return opened[-1]

    yield open_client
    for either in opened:
        await either.close()


@pytest.fixture
async def logged_in(connect, account):
    """Opens a client logged in as a new user; returns it and the account."""

    async def log_in(**options: Any) -> tuple[Either, Account]:
        who = account()
        either = connect(**options)
        await either.run("login", who.name, who.password)
        return either, who

    return log_in
