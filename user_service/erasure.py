"""Erasing an account: its sessions end at once, its row goes, its name is reserved for a
while (nobody may pose as it), and its messages are erased by message_service.

The erasure commits with a note in ``erasures``; message_service is then asked to erase
the account's messages, at once and again every ``erasure_retry_seconds`` (the request is
safe to repeat), and the note goes once message_service has answered at least
``erasure_settle_seconds`` after the erasure, when no send of the account can still be on
its way. So an erasure completes even if message_service is down when it is asked, or
user_service stops halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import Unauthorized
from common.internal import INTERNAL_TOKEN_HEADER
from common.ratelimit import KEY_PREFIX
from user_service import sessions
from user_service.config import Settings
from user_service.models import Erasure, ReservedName, User
from user_service.security import Hasher
from user_service.service import WRONG_PASSWORD

log = logging.getLogger(__name__)


async def erase_account(
    *,
    db: AsyncSession,
    hasher: Hasher,
    sessions_state: sessions.Sessions,
    settings: Settings,
    user_id: int,
    password: str,
) -> None:
    """Erase ``user_id``'s account, once its password is given again."""
    user = await db.get(User, user_id, with_for_update=True)
    if user is None:
        raise Unauthorized("this account no longer exists")
    valid, _ = await hasher.verify(password, user.password_hash)
    if not valid:
        raise Unauthorized(WRONG_PASSWORD)
    every_session = await sessions.of_user(db, user_id)
    await sessions.end(db=db, sessions=sessions_state, session_ids=every_session)
    until = datetime.now(UTC) + timedelta(days=settings.erased_name_reserved_days)
    await db.execute(
        insert(ReservedName)
        .values(skeleton=user.skeleton, until=until)
        .on_conflict_do_update(index_elements=[ReservedName.skeleton], set_={"until": until})
    )
    await db.execute(insert(Erasure).values(user_id=user_id).on_conflict_do_nothing())
    # The gateway counts logins per name as typed, lower-cased.
    await sessions_state.redis.delete(
        *{f"{KEY_PREFIX}login:user:{name}" for name in (user.username.lower(), user.canonical)}
    )
    await db.delete(user)


class Erasures:
    """Asks message_service to erase each noted account's messages until it has."""

    def __init__(
        self,
        *,
        transactions: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
    ) -> None:
        self.transactions = transactions
        self.http = http
        self.url = settings.message_service_url.rstrip("/")
        self.headers = {INTERNAL_TOKEN_HEADER: settings.internal_token.get_secret_value()}
        self.retry_seconds = settings.erasure_retry_seconds
        self.settle = timedelta(seconds=settings.erasure_settle_seconds)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def poke(self) -> None:
        """An erasure was just committed: ask now rather than at the next round."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._erase_noted()
            except Exception:
                log.warning("erasures not completed yet; trying again", exc_info=True)

    async def _erase_noted(self) -> None:
        async with self.transactions() as db:
            noted = (await db.execute(select(Erasure.user_id, Erasure.requested_at))).all()
        for user_id, requested_at in noted:
            settled = datetime.now(UTC) - requested_at >= self.settle
            async with self.http.post(
                f"{self.url}/users/{user_id}/erase", headers=self.headers
            ) as answer:
                if answer.status != 204:
                    log.warning("erasing %s: message_service answered %s", user_id, answer.status)
                    continue
            if not settled:
                continue
            async with self.transactions() as db, db.begin():
                await db.execute(delete(Erasure).where(Erasure.user_id == user_id))
