"""Password hashing through passlib (libpass): argon2id, with bcrypt kept only to verify
and upgrade older hashes."""

from __future__ import annotations

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
