"""Sessions in user_service: refresh tokens single use, reuse ending the session, logout,
a password change ending the other sessions, every end announced in Redis."""

import uuid
from typing import Any

import pytest
import redis

from common.sessions import ENDED_KEY
from common.tokens import verify_token
from tests.api import unique_name
from tests.harness.settings import JWT_SECRET

PASSWORD = "correct horse battery"


async def new_session(client, name: str | None = None) -> tuple[int, dict[str, Any]]:
    name = name or unique_name()
    registered = await client.post("/users", json={"username": name, "password": PASSWORD})
    login = await client.post("/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 200
    return registered.json()["id"], login.json()


def as_session(tokens: dict[str, Any]) -> dict[str, str]:
    claims = verify_token(secret=JWT_SECRET, token=tokens["access_token"])
    return {"x-user-id": str(claims.user_id), "x-session-id": str(claims.session_id)}


@pytest.fixture
def announced(unit_redis_url):
    connection = redis.Redis.from_url(unit_redis_url)

    def ended(tokens: dict[str, Any]) -> bool:
        session = verify_token(secret=JWT_SECRET, token=tokens["access_token"]).session_id
        return connection.zscore(ENDED_KEY, str(session)) is not None

    yield ended
    connection.close()


async def refresh(client, token: str):
    return await client.post("/sessions/refresh", json={"refresh_token": token})


async def test_a_refresh_token_renews_its_session_once(user_service, announced) -> None:
    _, first = await new_session(user_service)
    renewed = await refresh(user_service, first["refresh_token"])
    assert renewed.status_code == 200
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]
    same = verify_token(secret=JWT_SECRET, token=second["access_token"]).session_id
    assert same == verify_token(secret=JWT_SECRET, token=first["access_token"]).session_id
    assert not announced(first)
    # The second renewal with the new token works too: a chain, each link once.
    assert (await refresh(user_service, second["refresh_token"])).status_code == 200


async def test_a_reused_refresh_token_ends_the_whole_session(user_service, announced) -> None:
    _, first = await new_session(user_service)
    second = (await refresh(user_service, first["refresh_token"])).json()
    stolen = await refresh(user_service, first["refresh_token"])
    assert stolen.status_code == 401
    assert stolen.json()["code"] == "session_ended"
    assert announced(first)
    # The thief's reuse ends the rightful holder's renewals too.
    assert (await refresh(user_service, second["refresh_token"])).status_code == 401


@pytest.mark.parametrize("token", ["", "x" * 101, "never issued"])
async def test_an_unknown_refresh_token_is_refused(user_service, token) -> None:
    answer = await refresh(user_service, token)
    assert answer.status_code == (401 if token == "never issued" else 422)


async def test_logout_ends_the_session_and_only_it(user_service, announced) -> None:
    name = unique_name()
    _, laptop = await new_session(user_service, name)
    phone = (
        await user_service.post("/login", json={"username": name, "password": PASSWORD})
    ).json()
    ended = await user_service.post("/sessions/end", headers=as_session(laptop))
    assert ended.status_code == 204
    assert announced(laptop)
    assert not announced(phone)
    assert (await refresh(user_service, laptop["refresh_token"])).status_code == 401
    assert (await refresh(user_service, phone["refresh_token"])).status_code == 200


async def test_a_session_that_is_not_the_callers_is_not_ended(user_service, announced) -> None:
    _, alice = await new_session(user_service)
    _, mallory = await new_session(user_service)
    forged = {**as_session(mallory), "x-session-id": as_session(alice)["x-session-id"]}
    assert (await user_service.post("/sessions/end", headers=forged)).status_code == 204
    assert not announced(alice)
    no_session = {"x-user-id": as_session(alice)["x-user-id"], "x-session-id": str(uuid.uuid4())}
    assert (await user_service.post("/sessions/end", headers=no_session)).status_code == 204
    assert not announced(alice)


async def test_a_password_change_ends_every_other_session(user_service, announced) -> None:
    name = unique_name()
    _, here = await new_session(user_service, name)
    there = (
        await user_service.post("/login", json={"username": name, "password": PASSWORD})
    ).json()
    wrong = await user_service.post(
        "/users/me/password",
        json={"old_password": "not it at all", "new_password": "a brand new one"},
        headers=as_session(here),
    )
    assert wrong.status_code == 401
    assert not announced(there)
    short = await user_service.post(
        "/users/me/password",
        json={"old_password": PASSWORD, "new_password": "short"},
        headers=as_session(here),
    )
    assert short.status_code == 422
    changed = await user_service.post(
        "/users/me/password",
        json={"old_password": PASSWORD, "new_password": "a brand new one"},
        headers=as_session(here),
    )
    assert changed.status_code == 204
    assert announced(there)
    assert not announced(here)
    old = await user_service.post("/login", json={"username": name, "password": PASSWORD})
    assert old.status_code == 401
    new = await user_service.post("/login", json={"username": name, "password": "a brand new one"})
    assert new.status_code == 200
