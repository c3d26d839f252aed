"""user_service behaviour, in process against a real Postgres database."""

import importlib.metadata
import logging
import uuid

import bcrypt
import httpx
import psycopg
import pytest

from common.tokens import verify_token
from stack.infra import libpq
from tests.api import unique_name
from tests.harness.settings import INTERNAL_TOKEN, JWT_SECRET

PASSWORD = "correct horse battery"


async def register(client: httpx.AsyncClient, username: str, password: str = PASSWORD):
    return await client.post("/users", json={"username": username, "password": password})


async def test_register_answers_id_name_and_the_original_message(user_service) -> None:
    name = unique_name()
    response = await register(user_service, name)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "message"}
    assert body["username"] == name
    assert body["message"] == "User registered successfully"
    assert isinstance(body["id"], int)


async def test_names_are_unique_regardless_of_case(user_service) -> None:
    name = unique_name("Alice")
    assert (await register(user_service, name)).status_code == 201
    response = await register(user_service, name.lower())
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]


@pytest.mark.parametrize(
    ("username", "field"),
    [
        ("ab", "username"),
        ("x" * 33, "username"),
        ("with space", "username"),
        ("аlice", "username"),  # Cyrillic "а": a look-alike
        ("bad\x00name", "username"),
    ],
)
async def test_invalid_usernames_are_refused_with_a_readable_message(
    user_service, username: str, field: str
) -> None:
    response = await register(user_service, username, "secret-password-123")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["errors"][0]["field"] == field
    assert "secret-password-123" not in response.text


@pytest.mark.parametrize(
    ("password", "message"), [("short", "at least 8"), ("p" * 129, "at most 128")]
)
async def test_password_length_is_bounded_and_never_echoed(
    user_service, password: str, message: str
) -> None:
    response = await register(user_service, unique_name(), password)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert password not in response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"username": 12345, "password": PASSWORD}, [], "text"],
)
async def test_malformed_bodies_are_422(user_service, body) -> None:
    response = await user_service.post("/users", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


async def test_the_stored_hash_is_argon2id_and_never_returned(
    user_service, users_database_url: str
) -> None:
    name = unique_name()
    response = await register(user_service, name)
    assert "argon2" not in response.text
    with psycopg.connect(libpq(users_database_url)) as connection:
        stored = connection.execute(
            "SELECT password_hash FROM users WHERE username = %s", (name,)
        ).fetchone()
    assert stored is not None
    assert stored[0].startswith("$argon2id$")
    assert PASSWORD not in stored[0]


async def test_login_gives_a_token_naming_the_user(user_service) -> None:
    name = unique_name()
    user_id = (await register(user_service, name)).json()["id"]
    response = await user_service.post(
        "/login", json={"username": name.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 86400
    claims = verify_token(secret=JWT_SECRET, token=body["access_token"])
    assert claims.user_id == user_id
    assert claims.session_id is not None
    assert body["refresh_token"]


async def test_wrong_password_and_unknown_user_look_the_same(user_service) -> None:
    name = unique_name()
    await register(user_service, name)
    wrong = await user_service.post("/login", json={"username": name, "password": "not-the-one"})
    unknown = await user_service.post(
        "/login", json={"username": unique_name(), "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_a_bcrypt_hash_is_accepted_and_upgraded_to_argon2id(
    user_service, users_database_url: str
) -> None:
    name = unique_name()
    await register(user_service, name)
    old = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    conninfo = libpq(users_database_url)
    with psycopg.connect(conninfo) as connection:
        connection.execute("UPDATE users SET password_hash = %s WHERE username = %s", (old, name))
    response = await user_service.post("/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(
            "SELECT password_hash FROM users WHERE username = %s", (name,)
        ).fetchone()
    assert row is not None
    assert row[0].startswith("$argon2id$")


async def test_users_are_listed_in_id_order_in_pages_with_a_next_link(user_service) -> None:
    mine = {(await register(user_service, unique_name("page"))).json()["id"] for _ in range(5)}
    seen: list[int] = []
    url: str | None = "/users?limit=2"
    while url:
        response = await user_service.get(url)
        assert response.status_code == 200
        page = response.json()
        assert len(page) <= 2
        assert all(set(user) == {"id", "username"} for user in page)
        seen += [user["id"] for user in page]
        url = response.links.get("next", {}).get("url")
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert mine <= set(seen)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "after_id=-1", "limit=abc"])
async def test_bad_paging_parameters_are_422(user_service, query: str) -> None:
    assert (await user_service.get(f"/users?{query}")).status_code == 422


async def test_one_user_by_id_and_404_for_unknown(user_service) -> None:
    name = unique_name()
    user_id = (await register(user_service, name)).json()["id"]
    assert (await user_service.get(f"/users/{user_id}")).json() == {"id": user_id, "username": name}
    assert (await user_service.get("/users/999999999")).status_code == 404
    assert (await user_service.get(f"/users/{2**63}")).status_code == 422


async def test_requests_without_the_internal_token_are_refused(user_service) -> None:
    for token in (None, "forged", INTERNAL_TOKEN + "x"):
        headers = {"x-user-id": "1"}
        if token is not None:
            headers["x-internal-token"] = token
        response = await user_service.get("/users", headers=headers)
        if token is None:
            del user_service.headers["x-internal-token"]
            response = await user_service.get("/users", headers=headers)
            user_service.headers["x-internal-token"] = INTERNAL_TOKEN
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    assert (await user_service.get("/healthz", headers={"x-internal-token": ""})).status_code == 200


def test_passlib_comes_from_libpass_and_the_old_passlib_is_absent() -> None:
    assert importlib.metadata.distribution("libpass")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("passlib")


async def test_login_does_as_much_work_for_an_unknown_name_as_for_a_wrong_password(
    user_service, user_app, monkeypatch
) -> None:
    """One verification against a hash of the same cost either way, so that timing does
    not tell names apart (counted, not timed: a busy machine makes timings noisy)."""
    hasher = user_app.state.service.hasher
    verified: list[str] = []
    real = hasher.verify

    async def counting(password: str, stored: str):
        verified.append(stored)
        return await real(password, stored)

    monkeypatch.setattr(hasher, "verify", counting)
    name = unique_name()
    await register(user_service, name)
    for username in (name, unique_name()):
        response = await user_service.post(
            "/login", json={"username": username, "password": "wrong password"}
        )
        assert response.status_code == 401
    wrong_password, unknown_name = verified
    assert unknown_name == hasher.nobody

    def cost(stored: str) -> str:
        return stored.split("$")[3]  # $argon2id$v=19$m=...,t=...,p=...$salt$hash

    assert cost(unknown_name) == cost(wrong_password)


async def test_passwords_never_reach_the_logs(user_service, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"pw-{uuid.uuid4()}"
    name = unique_name()
    await register(user_service, name, secret)
    await user_service.post("/login", json={"username": name, "password": secret})
    await user_service.post("/login", json={"username": name, "password": secret + "x"})
    await user_service.post("/users", json={"username": "x", "password": secret})
    assert caplog.records
    assert not [r for r in caplog.records if secret in r.getMessage()]
