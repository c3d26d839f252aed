"""Sessions: logging in, renewing the access token, logging out, changing the password;
owned by user_service."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from common.errors import error_responses
from common.schemas import AccessToken, Credentials, PasswordChange, Refresh
from common.tokens import Claims
from gateway.deps import Caller, services
from gateway.ratelimit import client_address
from gateway.routes.users import UNAVAILABLE

router = APIRouter(tags=["sessions"])


async def for_session(request: Request, caller: Claims, path: str) -> Response:
    """Forward the request, its body as it came, to user_service as the caller's session."""
    return await services(request).upstreams.forward(
        request,
        "users",
        path,
        user_id=caller.user_id,
        session_id=caller.session_id,
        body=await request.body() or None,
    )


@router.post(
    "/login",
    response_model=AccessToken,
    responses=error_responses(401, 413, 422, 429, *UNAVAILABLE, challenge="never"),
)
async def login(data: Credentials, request: Request) -> Response:
    """Exchange a username and a password for a new session: a bearer token that lives a
    few minutes, and a refresh token that renews it."""
    gateway = services(request)
    limiter, settings = gateway.limiter, gateway.settings
    address = client_address(request)
    await limiter.hit(settings.login_rate_per_address, f"login:addr:{address}", "login attempts")
    name = data.username.lower()
    await limiter.hit(settings.login_rate_per_username, f"login:user:{name}", "login attempts")
    return await gateway.upstreams.forward(request, "users", "/login", body=await request.body())


@router.post(
    "/token/refresh",
    response_model=AccessToken,
    responses=error_responses(401, 413, 422, 429, *UNAVAILABLE, challenge="never"),
)
async def refresh(data: Refresh, request: Request) -> Response:
    """A new access token and a new refresh token for the session a refresh token renews.
    Each refresh token works once: a second use ends the whole session (401
    `session_ended`, as for an expired or unknown one: log in again)."""
    gateway = services(request)
    address = client_address(request)
    await gateway.limiter.hit(
        gateway.settings.refresh_rate_per_address, f"refresh:addr:{address}", "token renewals"
    )
    return await gateway.upstreams.forward(
        request, "users", "/sessions/refresh", body=await request.body()
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, *UNAVAILABLE, challenge="always"),
)
async def logout(request: Request, caller: Caller) -> Response:
    """End this session: its access tokens are refused everywhere within a second, and
    its refresh token renews nothing."""
    return await for_session(request, caller, "/sessions/end")


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 413, 422, *UNAVAILABLE, challenge="token"),
)
async def change_password(data: PasswordChange, request: Request, caller: Caller) -> Response:
    """Change the password (the old one is asked); every other session ends."""
    return await for_session(request, caller, "/users/me/password")
