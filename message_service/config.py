"""message_service settings, from MESSAGE_SERVICE_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.ratelimit import Rate, RateSetting
from common.schemas import CONTENT_MAX_DEFAULT
from common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Everything message_service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="MESSAGE_SERVICE_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/anonchat_messages"
    redis_url: str = "redis://127.0.0.1:6379/0"
    user_service_url: str = "http://127.0.0.1:8001"
    max_content_length: int = Field(CONTENT_MAX_DEFAULT, ge=1, le=16000)
    # Ids come from Postgres a block at a time; a replica keeps accepting sends while
    # Postgres is down until its ids run out (at least half a block).
    id_block_size: int = Field(10000, ge=2)
    # Group commit: at most this many messages per Redis write and per job.
    max_batch: int = Field(1000, ge=1)
    # Sends per caller, as "sends/seconds", counted in Redis as they are queued (so shared
    # by every replica).
    send_rate_per_user: RateSetting = Rate(limit=600, period=60)
    known_users_cache_size: int = Field(100_000, ge=1)
    known_users_ttl_seconds: float = Field(3600, ge=0)
    # Waits between the attempts of a job that failed (RQ Retry), about 34 minutes in
    # all; a job that cannot reach Postgres does not fail, it waits. The first is 0: a
    # dead worker's job is requeued at once by the maintenance pass that finds it,
    # without waiting for RQ's scheduler.
    retry_intervals: list[int] = [0, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900]
    failed_job_ttl_seconds: int = Field(30 * 86400, ge=60)
    # Event streams: how often the hub looks for what is stored when no announcement came,
    # the comment that keeps an idle stream open, how many events may wait for a client
    # that does not read before its stream is closed, and the open streams per user.
    stream_poll_seconds: float = Field(1.0, gt=0)
    stream_keep_alive_seconds: float = Field(15.0, gt=0)
    stream_buffer_events: int = Field(1000, ge=1)
    streams_per_user: int = Field(10, ge=1)


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
