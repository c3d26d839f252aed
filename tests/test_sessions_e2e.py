"""Sessions through the real gateways: refresh, logout, password change, and an ended
session refused by every gateway replica within a second."""

import time
from typing import Any

import httpx

from tests.api import PASSWORD, eventually, new_user
from tests.events import parse
from tests.harness.stack import RunningStack, gateways


def login(gateway: httpx.Client, name: str, password: str = PASSWORD) -> dict[str, Any]:
    answer = gateway.post("/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_refresh_renews_the_access_token_and_spends_the_refresh_token(gateway) -> None:
    alice = new_user(gateway)
    first = login(gateway, alice.name)
    renewed = gateway.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200
    assert gateway.get("/get_users?limit=1", headers=bearer(renewed.json())).status_code == 200
    again = gateway.post("/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    assert again.json()["code"] == "session_ended"
    # That reuse ended the session: its newest access token is refused too.
    ended = gateway.get("/get_users?limit=1", headers=bearer(renewed.json()))
    assert ended.status_code == 401


def test_an_ended_session_is_refused_by_every_gateway_within_a_second(
    gateway, running_stack: RunningStack, redis_url: str
) -> None:
    """Another gateway replica, on the stack's Redis as every replica is."""
    alice = new_user(gateway)
    tokens = login(gateway, alice.name)
    with gateways(running_stack, redis_url, {}, 1) as (other,), httpx.Client(base_url=other) as far:
        assert far.get("/get_users?limit=1", headers=bearer(tokens)).status_code == 200
        assert gateway.post("/logout", headers=bearer(tokens)).status_code == 204
        logged_out = time.monotonic()
        eventually(
            lambda: far.get("/get_users?limit=1", headers=bearer(tokens)).status_code == 401,
            timeout=2,
            interval=0.01,
        )
        assert time.monotonic() - logged_out < 1
        refused = far.get("/get_users?limit=1", headers=bearer(tokens))
    assert refused.json()["detail"] == "the session has ended: log in again"
    assert (
        gateway.post("/token/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(gateway) -> None:
    alice = new_user(gateway)
    here, there = login(gateway, alice.name), login(gateway, alice.name)
    changed = gateway.post(
        "/password",
        json={"old_password": PASSWORD, "new_password": "a new horse battery"},
        headers=bearer(here),
    )
    assert changed.status_code == 204
    eventually(lambda: gateway.get("/get_users?limit=1", headers=bearer(there)).status_code == 401)
    assert gateway.get("/get_users?limit=1", headers=bearer(here)).status_code == 200
    assert (
        gateway.post("/login", json={"username": alice.name, "password": PASSWORD}).status_code
        == 401
    )
    login(gateway, alice.name, "a new horse battery")


def test_an_ended_sessions_stream_is_told_to_reauthenticate(gateway, running_stack) -> None:
    alice = new_user(gateway)
    tokens = login(gateway, alice.name)
    with (
        httpx.Client(base_url=running_stack.gateway_url, timeout=10) as client,
        client.stream("GET", "/events", headers=bearer(tokens)) as stream,
    ):
        assert stream.status_code == 200
        assert gateway.post("/logout", headers=bearer(tokens)).status_code == 204
        ended = time.monotonic()
        events = list(parse(stream.iter_lines()))
    assert events[-1].name == "reauthenticate"
    assert "session has ended" in events[-1].data["detail"]
    assert time.monotonic() - ended < 2
