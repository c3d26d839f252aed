"""Worker settings, from WORKER_* (and shared ANONCHAT_*) variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from worker.check import DEFAULT_STATUS_FILE


class Settings(ServiceSettings):
    """Everything a worker reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="WORKER_")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/anonchat_messages"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A job whose worker died is requeued once its heartbeat (job timeout + this grace)
    # has expired and a maintenance pass (every maintenance_interval s) has seen it.
    heartbeat_grace_seconds: int = Field(5, ge=1)
    maintenance_interval_seconds: int = Field(5, ge=1)
    # How long an idle worker blocks on the queue between maintenance checks, plus 15.
    worker_ttl_seconds: int = Field(20, ge=16)
    statement_timeout_ms: int = Field(10_000, ge=100)
    idle_in_transaction_ms: int = Field(3_000, ge=100)
    # How long a job holds a message whose conversation has an earlier one still queued
    # in another job (see worker/ordering.py).
    order_hold_seconds: float = Field(2.0, ge=0)
    # Where the worker notes its health at each heartbeat, for `python -m worker.check`
    # (which reads this default unless given another path).
    status_file: str = DEFAULT_STATUS_FILE


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
