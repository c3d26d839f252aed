"""user_service settings, from USER_SERVICE_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.schemas import PASSWORD_MAX, PASSWORD_MIN_DEFAULT
from common.settings import TokenSettings


class Settings(TokenSettings):
    """Everything user_service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="USER_SERVICE_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/anonchat_users"
    password_min_length: int = Field(PASSWORD_MIN_DEFAULT, ge=1, le=PASSWORD_MAX)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Erasing an account erases its messages there (asked again until it answers).
    message_service_url: str = "http://127.0.0.1:8002"
    erasure_retry_seconds: float = Field(5.0, gt=0)
    # A send the account made just before its sessions ended may still be on its way
    # (a request may take the servers' request timeout): erasing stops only after this.
    erasure_settle_seconds: float = Field(15.0, ge=0)
    # An erased account's name cannot be registered again for this long.
    erased_name_reserved_days: int = Field(30, ge=0)
    # A session's access tokens are short-lived; its refresh token renews them (and itself)
    # for this long after its last use.
    access_token_ttl_seconds: int = Field(900, ge=2)
    refresh_token_ttl_seconds: int = Field(30 * 86400, ge=60)
    # argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_cost_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    # Password hashes computed at once (each takes argon2_memory_cost_kib of memory).
    hash_concurrency: int = Field(2, ge=1)


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
