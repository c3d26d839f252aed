"""The gateway on its own: token checks, body limits and upstream failures."""

import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
from starlette.requests import Request

from common.errors import UpstreamTimeout
from common.tokens import issue_token
from gateway.app import create_app
from gateway.config import Settings
from gateway.upstream import Upstreams
from stack.processes import free_port
from tests.harness.settings import INTERNAL_TOKEN, JWT_SECRET


@pytest.fixture(scope="module")
def silent_upstream() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
async def gateway(silent_upstream: str, unit_redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        redis_url=unit_redis_url,
        internal_token=INTERNAL_TOKEN,
        jwt_secret=JWT_SECRET,
        user_service_url=f"http://127.0.0.1:{free_port()}",
        message_service_url=silent_upstream,
        upstream_timeout=0.5,
        max_body_bytes=2048,
        metrics_port=0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def _forge(claims: dict[str, object], key: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "1", "iss": "anonchat", "iat": now, "exp": now + 60, **overrides}


def _tampered() -> str:
    header, payload, signature = issue_token(secret=JWT_SECRET, user_id=1, ttl_seconds=60).split(
        "."
    )
    return f"{header}.{payload}.{signature[:-4]}AAAA"


def _unsigned() -> str:
    return jwt.encode(_claims(), "", algorithm="none")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        f"Bearer {_tampered()}",
        f"Bearer {_unsigned()}",
        f"Bearer {_forge(_claims(), key='another-key-of-sufficient-length-000')}",
        f"Bearer {_forge(_claims(exp=int(time.time()) - 10))}",
        f"Bearer {_forge(_claims(sub='alice'))}",
        f"Bearer {_forge(_claims(iss='someone-else'))}",
    ],
)
async def test_anything_but_a_valid_token_is_401_in_one_shape(
    gateway: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await gateway.get("/get_users", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert set(response.json()) == {"detail", "code"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_reaches_the_upstream(gateway: httpx.AsyncClient) -> None:
    token = issue_token(secret=JWT_SECRET, user_id=1, ttl_seconds=60)
    started = time.monotonic()
    response = await gateway.get("/get_users", headers={"Authorization": f"Bearer {token}"})
    # user_service points at a closed port: the call got past the token check.
    assert response.status_code == 503
    assert response.json() == {
        "detail": "user_service is unavailable, try again shortly",
        "code": "service_unavailable",
    }
    assert time.monotonic() - started < 2


async def test_bodies_over_the_limit_are_413_before_parsing(gateway: httpx.AsyncClient) -> None:
    body = b'{"username": "' + b"a" * 4096 + b'", "password": "x"}'
    response = await gateway.post("/register", content=body)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_every_response_carries_a_request_id_and_security_headers(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("cache-control") == ["no-store"]
    generated = await gateway.get("/healthz", headers={"x-request-id": "bad id\n"})
    assert generated.headers["x-request-id"] != "bad id\n"
    assert len(generated.headers["x-request-id"]) == 32


async def test_the_readiness_probe_names_the_missing_upstream(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "user_service": "unavailable",
        "message_service": "unavailable",
        "redis": "ok",
    }
    assert response.json()["detail"] == "unavailable: user_service, message_service"


async def test_unknown_paths_are_json_404(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "no such endpoint: GET /nope", "code": "not_found"}


def test_openapi_documents_the_public_endpoints() -> None:
    schema = create_app(Settings()).openapi()
    assert {"/register", "/login", "/get_users"} <= set(schema["paths"])
    assert "password" not in str(schema["paths"]["/get_users"])
    # The send route reads its body and header itself; the document still describes them.
    send = schema["paths"]["/send_message"]["post"]
    body = send["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["content", "receiver_id"]
    assert [p["name"] for p in send["parameters"]] == ["Idempotency-Key"]
    assert send["security"] == [{"HTTPBearer": []}]


async def test_a_silent_upstream_is_504_within_the_timeout(silent_upstream: str) -> None:
    upstreams = Upstreams(
        urls={"slow": silent_upstream},
        internal_token=INTERNAL_TOKEN,
        connect_timeout=0.5,
        timeout=0.3,
        pool_size=1,
    )
    request = Request(
        {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    )
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout, match="slow did not answer in time"):
            await upstreams.forward(request, "slow", "/anything")
    finally:
        await upstreams.close()
    assert time.monotonic() - started < 2


async def test_cors_opens_only_to_the_configured_origins(unit_redis_url: str) -> None:
    settings = Settings(
        redis_url=unit_redis_url, cors_origins=["https://chat.example"], metrics_port=0
    )
    app = create_app(settings)
    preflight = {"Access-Control-Request-Method": "POST"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        allowed = await client.options(
            "/send_message", headers={"Origin": "https://chat.example", **preflight}
        )
        other = await client.options(
            "/send_message", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert "access-control-allow-origin" not in other.headers
