"""Worker settings, from WORKER_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from worker.check import DEFAULT_STATUS_FILE


class Settings(ServiceSettings):
    """Everything a worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="WORKER_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/anonchat_messages"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A running job's heartbeat: a job whose worker has been silent this long counts as
    # abandoned, and the next maintenance pass (every maintenance_interval s, by any
    # worker) requeues it.
    heartbeat_ttl_seconds: int = Field(15, ge=2)
    maintenance_interval_seconds: int = Field(5, ge=1)
    # How long an idle worker blocks on the queue between maintenance checks, plus 15.
    worker_ttl_seconds: int = Field(20, ge=16)
    statement_timeout_ms: int = Field(10_000, ge=100)
    idle_in_transaction_ms: int = Field(3_000, ge=100)
    # While Postgres does not answer, a job waits for it, trying again after 0.1 s, then
    # twice as long each time up to this.
    database_retry_max_seconds: float = Field(1.0, gt=0)
    # Where the worker notes its health at each heartbeat; `python -m worker.check` reads
    # this default (give it the path as its argument if you move it).
    status_file: str = DEFAULT_STATUS_FILE

    @model_validator(mode="after")
    def _heartbeat_outlasts_a_statement(self) -> Settings:
        # A statement (waiting for the cursor lock included) runs without a heartbeat.
        if self.heartbeat_ttl_seconds * 1000 <= self.statement_timeout_ms:
            raise ValueError("heartbeat_ttl_seconds must be longer than statement_timeout_ms")
        return self


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
