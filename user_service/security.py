"""Password hashing through passlib (libpass): argon2id, with bcrypt kept only to verify
and upgrade older hashes; each hash runs in a thread, a few at a time."""

from __future__ import annotations

import asyncio
import secrets

from passlib.context import CryptContext

from user_service.config import Settings


def password_context(settings: Settings) -> CryptContext:
    """The hashing policy: new hashes are argon2id, anything else is upgraded on login."""
    return CryptContext(
        schemes=["argon2", "bcrypt"],
        deprecated="auto",
        argon2__type="ID",
        argon2__time_cost=settings.argon2_time_cost,
        argon2__memory_cost=settings.argon2_memory_cost_kib,
        argon2__parallelism=settings.argon2_parallelism,
    )


class Hasher:
    """Hashes and verifies passwords off the event loop. At most ``concurrency`` run at
    once: each takes the argon2 memory cost (64 MiB by default), and more at once than
    there are cores only queues them in threads."""

    def __init__(self, context: CryptContext, *, concurrency: int) -> None:
        self.context = context
        self._slots = asyncio.Semaphore(concurrency)
        # A login for a name nobody has verifies against this, so that it costs as much as
        # a wrong password and timing does not tell names apart.
        self.nobody = context.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        """A new hash of ``password``."""
        async with self._slots:
            hashed: str = await asyncio.to_thread(self.context.hash, password)
            return hashed

    async def verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        """Whether ``password`` matches ``stored``, and a new hash if the policy changed."""
        async with self._slots:
            valid, new_hash = await asyncio.to_thread(
                self.context.verify_and_update, password, stored
            )
            return bool(valid), new_hash
