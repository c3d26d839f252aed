"""User operations. They flush; the request's transaction commits."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, FieldError, InvalidInput, Unauthorized
from common.schemas import Credentials, PasswordChange
from user_service import names
from user_service.models import ReservedName, User
from user_service.security import Hasher

WRONG_CREDENTIALS = "wrong username or password"
WRONG_PASSWORD = "wrong password"


async def register_user(
    *, session: AsyncSession, hasher: Hasher, data: Credentials, password_min_length: int
) -> User:
    """Create a user. A name taken (in any letter case), one that looks like a taken
    name, or one an erased account held lately is a conflict."""
    name = names.check(data.username)
    password = _long_enough(data.password.get_secret_value(), "password", password_min_length)
    password_hash = await hasher.hash(password)
    # Registrations of look-alike names take turns, so that two cannot both pass.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name.skeleton))))
    taken = (
        (
            await session.execute(
                select(User.canonical).where(
                    (User.canonical == name.canonical) | (User.skeleton == name.skeleton)
                )
            )
        )
        .scalars()
        .all()
    )
    if name.canonical in taken:
        raise Conflict(f"the username {data.username!r} is taken")
    if taken:
        raise Conflict(f"the username {data.username!r} looks too much like a name already taken")
    reserved = await session.get(ReservedName, name.skeleton)
    if reserved is not None and reserved.until > datetime.now(UTC):
        raise Conflict(
            f"the username {data.username!r} belonged to an account erased lately; "
            f"it can be registered again from {reserved.until:%Y-%m-%d}"
        )
    user = User(
        username=name.shown,
        canonical=name.canonical,
        skeleton=name.skeleton,
        password_hash=password_hash,
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(*, session: AsyncSession, hasher: Hasher, data: Credentials) -> User:
    """The user these credentials belong to; the same error whatever is wrong with them."""
    password = data.password.get_secret_value()
    user = await by_name(session=session, username=data.username)
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


async def by_name(*, session: AsyncSession, username: str) -> User | None:
    """The user with this name, compared as names are (any letter case)."""
    compared = names.canonical(username)
    if compared is None:
        return None
    found: User | None = (
        await session.execute(select(User).where(User.canonical == compared))
    ).scalar_one_or_none()
    return found


async def list_users(*, session: AsyncSession, after_id: int, limit: int) -> list[User]:
    """Up to ``limit`` users with ids above ``after_id``, in id order."""
    statement = select(User).where(User.id > after_id).order_by(User.id).limit(limit)
    return list((await session.execute(statement)).scalars())


async def get_user(*, session: AsyncSession, user_id: int) -> User | None:
    """The user with this id, if there is one."""
    return await session.get(User, user_id)


async def change_password(
    *,
    session: AsyncSession,
    hasher: Hasher,
    user_id: int,
    data: PasswordChange,
    password_min_length: int,
) -> None:
    """Replace the user's password, once the old one is verified."""
    new = _long_enough(data.new_password.get_secret_value(), "new_password", password_min_length)
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise Unauthorized("this account no longer exists")
    valid, _ = await hasher.verify(data.old_password.get_secret_value(), user.password_hash)
    if not valid:
        raise Unauthorized(WRONG_PASSWORD)
    user.password_hash = await hasher.hash(new)


def _long_enough(password: str, field: str, minimum: int) -> str:
    if len(password) < minimum:
        message = f"must be at least {minimum} characters long"
        raise InvalidInput(f"{field}: {message}", errors=[FieldError(field=field, message=message)])
    return password
