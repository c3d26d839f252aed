"""Gateway settings, from GATEWAY_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from common.ratelimit import Rate, RateSetting
from common.schemas import CONTENT_MAX_DEFAULT, PASSWORD_MAX, PASSWORD_MIN_DEFAULT
from common.settings import TokenSettings


class Settings(TokenSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    user_service_url: str = "http://127.0.0.1:8001"
    message_service_url: str = "http://127.0.0.1:8002"
    upstream_connect_timeout: float = Field(1.0, gt=0)
    upstream_timeout: float = Field(10.0, gt=0)
    upstream_pool_size: int = Field(100, ge=1)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    cors_origins: list[str] = []
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Rates as "requests/seconds", shared by every gateway replica through Redis.
    # A password guesser gets 10 quick tries per name, then one every 30 s.
    login_rate_per_username: RateSetting = Rate(limit=10, period=300)
    login_rate_per_address: RateSetting = Rate(limit=60, period=60)
    register_rate_per_address: RateSetting = Rate(limit=150, period=60)
    refresh_rate_per_address: RateSetting = Rate(limit=120, period=60)
    # A token's user is checked against user_service once per this many seconds.
    known_users_ttl_seconds: float = Field(60, ge=0)
    # Ended sessions: kept for as long as their access tokens may live (user_service's
    # USER_SERVICE_ACCESS_TOKEN_TTL_SECONDS, plus a margin), and the set re-read this often
    # beside the announcements (which are at most once).
    ended_sessions_keep_seconds: float = Field(960, gt=0)
    ended_sessions_poll_seconds: float = Field(0.5, gt=0)
    # Limits the services enforce and the gateway's OpenAPI document states: read from
    # the services' own variables, so that one setting changes both.
    password_min_length: int = Field(
        PASSWORD_MIN_DEFAULT,
        ge=1,
        le=PASSWORD_MAX,
        validation_alias=AliasChoices("USER_SERVICE_PASSWORD_MIN_LENGTH"),
    )
    max_content_length: int = Field(
        CONTENT_MAX_DEFAULT,
        ge=1,
        le=16000,
        validation_alias=AliasChoices("MESSAGE_SERVICE_MAX_CONTENT_LENGTH"),
    )


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
