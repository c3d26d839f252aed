"""Public user endpoints, owned by user_service."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, status

from common.errors import error_responses
from common.schemas import (
    MAX_BIGINT,
    USERNAME_MAX,
    Credentials,
    PageLimit,
    UserRead,
    UserRegistered,
)
from gateway.deps import CurrentUser, services
from gateway.ratelimit import client_address

router = APIRouter(tags=["users"])
UNAVAILABLE = (503, 504)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRegistered,
    responses=error_responses(409, 413, 422, 429, *UNAVAILABLE),
)
async def register(data: Credentials, request: Request) -> Response:
    """Register with a username and a password; nothing else is asked."""
    gateway = services(request)
    address = client_address(request)
    await gateway.limiter.hit(
        gateway.settings.register_rate_per_address, f"register:{address}", "registrations"
    )
    return await gateway.upstreams.forward(request, "users", "/users", body=await request.body())


@router.get(
    "/get_users",
    response_model=list[UserRead],
    responses=error_responses(401, 422, *UNAVAILABLE, challenge="always"),
)
async def get_users(
    request: Request,
    user_id: CurrentUser,
    limit: PageLimit = 100,
    after_id: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="last id seen")] = 0,
) -> Response:
    """Everyone registered, in id order; a ``Link: <...>; rel="next"`` header while more remain."""
    return await services(request).upstreams.forward(
        request,
        "users",
        "/users",
        user_id=user_id,
        params={"limit": str(limit), "after_id": str(after_id)},
    )


@router.get(
    "/users/by-name/{username}",
    response_model=UserRead,
    responses=error_responses(401, 404, 422, *UNAVAILABLE, challenge="always"),
)
async def get_user_by_name(
    request: Request,
    user_id: CurrentUser,
    username: Annotated[str, Path(min_length=1, max_length=USERNAME_MAX * 4)],
) -> Response:
    """One user by name, in any letter case (`Alice` finds `alice`); 404 if none."""
    return await services(request).upstreams.forward(
        request, "users", f"/users/by-name/{quote(username, safe='')}", user_id=user_id
    )


@router.get(
    "/users/{id}",
    response_model=UserRead,
    responses=error_responses(401, 404, 422, *UNAVAILABLE, challenge="always"),
)
async def get_user(
    request: Request,
    user_id: CurrentUser,
    id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
) -> Response:
    """One user by id; 404 for an id nobody has (or an erased account)."""
    return await services(request).upstreams.forward(
        request, "users", f"/users/{id}", user_id=user_id
    )
