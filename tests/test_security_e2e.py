"""The protections a public chat API needs on its first day, through real processes."""

import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from common.tokens import issue_token
from stack.infra import libpq
from tests.api import PASSWORD, User, login, new_user, register, send, unique_name, wait_persisted
from tests.harness.settings import INTERNAL_TOKEN, JWT_SECRET
from tests.harness.stack import RunningStack, gateways

LIMITS = {
    "GATEWAY_LOGIN_RATE_PER_USERNAME": "3/60",
    "GATEWAY_LOGIN_RATE_PER_ADDRESS": "8/60",
    "GATEWAY_REGISTER_RATE_PER_ADDRESS": "4/60",
    "MESSAGE_SERVICE_SEND_RATE_PER_USER": "3/60",
}


@pytest.fixture(scope="module")
def replicas(running_stack: RunningStack, unit_redis_url: str) -> Iterator[list[str]]:
    """Two gateway replicas with small rate limits, shared through Redis."""
    with gateways(running_stack, unit_redis_url, LIMITS, 2) as urls:
        yield urls


@pytest.fixture
def fresh_limits(unit_redis_url: str) -> None:
    client = redis.Redis.from_url(unit_redis_url)
    for key in client.scan_iter("anonchat:rate:*"):
        client.delete(key)
    client.close()


def assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "too_many_requests"
    assert int(response.headers["retry-after"]) >= 1


def test_password_guessing_is_stopped_per_username_across_replicas(
    gateway: httpx.Client, replicas: list[str], fresh_limits
) -> None:
    victim = new_user(gateway)
    answers = []
    for attempt in range(5):
        url = replicas[attempt % 2]  # the attacker spreads over both replicas
        answers.append(
            httpx.post(
                f"{url}/login", json={"username": victim.name, "password": f"guess{attempt}x"}
            )
        )
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    for answer in answers[3:]:
        assert_429(answer)
    # Even the right password waits: the name is locked for now, not the account forever.
    assert_429(
        httpx.post(f"{replicas[0]}/login", json={"username": victim.name, "password": PASSWORD})
    )


def test_logins_are_limited_per_client_address(replicas: list[str], fresh_limits) -> None:
    answers = [
        httpx.post(
            f"{replicas[0]}/login", json={"username": unique_name(), "password": "whatever1"}
        )
        for _ in range(9)
    ]
    assert {a.status_code for a in answers[:8]} == {401}
    assert_429(answers[8])


def test_registrations_are_limited_per_client_address(replicas: list[str], fresh_limits) -> None:
    answers = [
        httpx.post(
            f"{replicas[n % 2]}/register", json={"username": unique_name(), "password": PASSWORD}
        )
        for n in range(5)
    ]
    assert {a.status_code for a in answers[:4]} == {201}
    assert_429(answers[4])


def test_sends_are_limited_per_caller(
    gateway: httpx.Client, replicas: list[str], fresh_limits
) -> None:
    alice, bob = new_user(gateway), new_user(gateway)
    answers = [
        httpx.post(
            f"{replicas[n % 2]}/send_message",
            json={"content": f"n{n}", "receiver_id": bob.id},
            headers=alice.headers,
        )
        for n in range(4)
    ]
    assert {a.status_code for a in answers[:3]} == {202}
    assert_429(answers[3])
    # Another caller has a budget of its own.
    other = httpx.post(
        f"{replicas[0]}/send_message",
        json={"content": "mine", "receiver_id": alice.id},
        headers=bob.headers,
    )
    assert other.status_code == 202


def test_the_default_limits_let_a_busy_legitimate_client_through(
    running_stack: RunningStack, unit_redis_url: str, fresh_limits
) -> None:
    """A hundred registrations and a few hundred sends a minute from one address pass
    a gateway with the default limits."""
    with (
        gateways(running_stack, unit_redis_url, {}, 1) as (url,),
        httpx.Client(base_url=url, timeout=10) as gateway,
    ):
        names = [unique_name("busy") for _ in range(100)]
        assert {register(gateway, name).status_code for name in names} == {201}
        alice, bob = User(0, names[0], login(gateway, names[0])), new_user(gateway)
        sends = [
            gateway.post(
                "/send_message",
                json={"content": f"{n}", "receiver_id": bob.id},
                headers=alice.headers,
            )
            for n in range(300)
        ]
        assert {s.status_code for s in sends} == {202}
        # The same gateway does stop a flood: the default send budget is 600 a minute.
        flood = [
            gateway.post(
                "/send_message", json={"content": "x", "receiver_id": bob.id}, headers=alice.headers
            ).status_code
            for _ in range(400)
        ]
        assert 429 in flood


def test_a_valid_token_of_an_unknown_user_is_401(gateway: httpx.Client) -> None:
    token = issue_token(secret=JWT_SECRET, user_id=10**15, ttl_seconds=60)
    response = gateway.get("/get_users", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or expired token", "code": "unauthorized"}


@pytest.mark.parametrize("service", ["user_service_port", "message_service_port"])
@pytest.mark.parametrize("token", [None, "forged", INTERNAL_TOKEN[:-1]])
def test_services_refuse_calls_that_did_not_come_from_the_gateway(
    running_stack: RunningStack, service: str, token: str | None
) -> None:
    port = getattr(running_stack.config, service)
    headers = {"x-user-id": "1"}
    if token is not None:
        headers["x-internal-token"] = token
    for method, path in (("GET", "/users"), ("GET", "/messages"), ("POST", "/messages")):
        response = httpx.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


BAD_BODIES = [
    b'{"username": "mallory", "password": ',
    b'{"username": "mallory", "password": 12345678}',
    b'{"username": "mallory"}',
    b'{"username": "mall\\u0000ory", "password": "password123"}',
    b'{"username": "mall\xffory", "password": "password123"}',
    b'{"username": "m\xd0\xb0llory", "password": "password123"}',
    b'{"username": "mallory", "password": "pass\\u0000word123"}',
    b'{"username": "mallory", "password": "\\ud800password123"}',
    b"[]",
    b"",
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_registrations_are_4xx_and_store_nothing(gateway: httpx.Client, body: bytes) -> None:
    response = gateway.post("/register", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert b"password123" not in response.content
    viewer = new_user(gateway)
    names = [
        u["username"] for u in gateway.get("/get_users?limit=1000", headers=viewer.headers).json()
    ]
    assert not [n for n in names if "mall" in n]


@pytest.mark.parametrize(
    "body",
    [
        {"content": "x", "receiver_id": 2**63},
        {"content": "x", "receiver_id": -1},
        {"content": "x", "receiver_id": 1.5},
        {"content": ["x"], "receiver_id": 1},
        {"content": None, "receiver_id": 1},
        {"content": "x", "receiver_id": 1, "sender_id": 0},
    ],
)
def test_bad_sends_are_422(gateway: httpx.Client, body) -> None:
    sender = new_user(gateway)
    response = gateway.post("/send_message", json=body, headers=sender.headers)
    assert response.status_code == 422, response.text


def test_names_differing_only_by_case_are_one_name(gateway: httpx.Client) -> None:
    name = unique_name("Case")
    assert register(gateway, name).status_code == 201
    assert register(gateway, name.swapcase()).status_code == 409


def test_cors_is_closed_unless_configured(gateway: httpx.Client) -> None:
    preflight = gateway.options(
        "/get_users",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = gateway.get("/receive_message", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_security_headers_on_every_answer(gateway: httpx.Client) -> None:
    for response in (
        gateway.get("/receive_message"),
        gateway.get("/nope"),
        gateway.get("/get_users"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"


def test_a_message_is_readable_by_its_two_parties_only(gateway: httpx.Client) -> None:
    alice, bob, mallory = new_user(gateway), new_user(gateway), new_user(gateway)
    sent = send(gateway, alice, bob.id, f"secret {uuid.uuid4()}").json()
    wait_persisted(gateway, bob, sent["id"])
    stolen = gateway.get(f"/messages/{sent['id']}", headers=mallory.headers)
    unknown = gateway.get(f"/messages/{sent['id'] + 10**9}", headers=mallory.headers)
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json() == unknown.json()
    everything = gateway.get("/get_messages", headers=mallory.headers).json()
    assert everything == []
    with_alice = gateway.get(f"/get_messages?with_user={alice.id}", headers=mallory.headers).json()
    assert with_alice == []


def test_a_token_of_a_deleted_user_is_401(
    gateway: httpx.Client, running_stack: RunningStack, unit_redis_url: str
) -> None:
    """Refused as soon as the gateway's cache of known users lets go of it (here at once)."""
    ttl = {"GATEWAY_KNOWN_USERS_TTL_SECONDS": "0"}
    with gateways(running_stack, unit_redis_url, ttl, 1) as (url,):
        doomed = new_user(gateway)
        assert httpx.get(f"{url}/get_users", headers=doomed.headers).status_code == 200
        users_database = libpq(running_stack.config.users_database_url)
        with psycopg.connect(users_database) as connection:
            connection.execute("DELETE FROM users WHERE id = %s", (doomed.id,))
        refused = httpx.get(f"{url}/get_users", headers=doomed.headers)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid or expired token", "code": "unauthorized"}
