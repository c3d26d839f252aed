"""User operations. They flush; the request's transaction commits."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, FieldError, InvalidInput, Unauthorized
from common.schemas import Credentials
from user_service.models import User
from user_service.security import Hasher

WRONG_CREDENTIALS = "wrong username or password"


async def register_user(
    *, session: AsyncSession, hasher: Hasher, data: Credentials, password_min_length: int
) -> User:
    """Create a user; a name taken in any letter case is a conflict."""
    password = data.password.get_secret_value()
    if len(password) < password_min_length:
        message = f"must be at least {password_min_length} characters long"
        raise InvalidInput(
            f"password: {message}", errors=[FieldError(field="password", message=message)]
        )
    password_hash = await hasher.hash(password)
    statement = (
        insert(User)
        .values(username=data.username, password_hash=password_hash)
        .on_conflict_do_nothing(index_elements=[func.lower(User.username)])
        .returning(User)
    )
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is None:
        raise Conflict(f"the username {data.username!r} is taken")
    return user


async def authenticate(*, session: AsyncSession, hasher: Hasher, data: Credentials) -> User:
    """The user these credentials belong to; the same error whatever is wrong with them."""
    password = data.password.get_secret_value()
    user = (
        await session.execute(
            select(User).where(func.lower(User.username) == data.username.lower())
        )
    ).scalar_one_or_none()
    if user is None:
        # Spend the time a real check takes, so that timing does not tell names apart.
        await hasher.verify(password, hasher.nobody)
        raise Unauthorized(WRONG_CREDENTIALS)
    valid, new_hash = await hasher.verify(password, user.password_hash)
    if not valid:
        raise Unauthorized(WRONG_CREDENTIALS)
    if new_hash is not None:
        await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
    return user


async def list_users(*, session: AsyncSession, after_id: int, limit: int) -> list[User]:
    """Up to ``limit`` users with ids above ``after_id``, in id order."""
    statement = select(User).where(User.id > after_id).order_by(User.id).limit(limit)
    return list((await session.execute(statement)).scalars())


async def get_user(*, session: AsyncSession, user_id: int) -> User | None:
    """The user with this id, if there is one."""
    return await session.get(User, user_id)
