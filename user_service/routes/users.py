"""Registration and the users (called by the gateway and message_service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from common.errors import NotFound, error_responses
from common.paging import next_link
from common.schemas import MAX_BIGINT, Credentials, PageLimit, UserRead, UserRegistered
from user_service import service
from user_service.deps import ServiceDep, TransactionDep

router = APIRouter(tags=["users"])


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRegistered,
    responses=error_responses(409, 422),
)
async def register(data: Credentials, session: TransactionDep, state: ServiceDep) -> UserRegistered:
    """Register a user with a name and a password."""
    user = await service.register_user(
        session=session,
        hasher=state.hasher,
        data=data,
        password_min_length=state.settings.password_min_length,
    )
    return UserRegistered(id=user.id, username=user.username)


@router.get("/users", response_model=list[UserRead], responses=error_responses(422))
async def list_users(
    request: Request,
    response: Response,
    session: TransactionDep,
    limit: PageLimit = 100,
    after_id: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
) -> list[UserRead]:
    """Users in id order, ``limit`` at a time after ``after_id``; ``Link`` names the next page."""
    users = await service.list_users(session=session, after_id=after_id, limit=limit + 1)
    page = [UserRead(id=user.id, username=user.username) for user in users[:limit]]
    if len(users) > limit:
        response.headers["Link"] = next_link(request.url, limit=limit, after_id=page[-1].id)
    return page


@router.get("/users/{user_id}", response_model=UserRead, responses=error_responses(404))
async def get_user(
    user_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)], session: TransactionDep
) -> UserRead:
    """One user by id."""
    user = await service.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound("no such user")
    return UserRead(id=user.id, username=user.username)


@router.get("/users/by-name/{username}", response_model=UserRead, responses=error_responses(404))
async def get_user_by_name(username: str, session: TransactionDep) -> UserRead:
    """One user by name, compared as names are (any letter case)."""
    user = await service.by_name(session=session, username=username)
    if user is None:
        raise NotFound("no such user")
    return UserRead(id=user.id, username=user.username)
