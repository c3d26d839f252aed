"""Registration, login and the user list through the real gateway and user_service."""

import httpx

from tests.api import all_pages, login, register, unique_name


def test_register_login_and_list_users(gateway: httpx.Client) -> None:
    alice, bob = unique_name("alice"), unique_name("bob")
    first = register(gateway, alice)
    assert first.status_code == 201
    assert first.json()["message"] == "User registered successfully"
    assert register(gateway, bob).status_code == 201
    duplicate = register(gateway, alice.upper())
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "conflict"

    headers = login(gateway, alice)
    listed = gateway.get("/get_users", headers=headers)
    assert listed.status_code == 200
    assert "password" not in listed.text
    users = {
        user["username"]: user for user in all_pages(gateway, "/get_users?limit=1000", headers)
    }
    assert {alice, bob} <= set(users)
    assert users[alice] == {"id": first.json()["id"], "username": alice}
    assert "argon2" not in listed.text

    anonymous = gateway.get("/get_users")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"


def test_user_list_pages_through_the_gateway_with_public_links(gateway: httpx.Client) -> None:
    names = [unique_name("pager") for _ in range(3)]
    for name in names:
        register(gateway, name)
    headers = login(gateway, names[0])
    seen: list[str] = []
    url: str | None = "/get_users?limit=2"
    while url:
        response = gateway.get(url, headers=headers)
        assert response.status_code == 200
        seen += [user["username"] for user in response.json()]
        url = response.links.get("next", {}).get("url")
        if url:
            assert url.startswith(str(gateway.base_url) + "/get_users?")
    assert set(names) <= set(seen)
    assert len(seen) == len(set(seen))


def test_errors_come_in_one_json_shape(gateway: httpx.Client) -> None:
    unknown = gateway.get("/no/such/path")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    bad = gateway.post("/register", json={"username": "x", "password": "secret-password-1"})
    assert bad.status_code == 422
    assert "secret-password-1" not in bad.text
    assert bad.json()["errors"][0]["field"] == "username"


def test_every_process_reports_ready(running_stack) -> None:
    response = httpx.get(running_stack.gateway_url + "/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"user_service": "ok", "message_service": "ok", "redis": "ok"},
    }
    assert httpx.get(running_stack.gateway_url + "/healthz").json() == {"status": "ok"}


def test_services_refuse_calls_that_bypass_the_gateway(running_stack) -> None:
    port = running_stack.config.user_service_port
    forged = httpx.get(f"http://127.0.0.1:{port}/users", headers={"x-user-id": "1"})
    assert forged.status_code == 401
