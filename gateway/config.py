"""Gateway settings, from GATEWAY_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

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


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
