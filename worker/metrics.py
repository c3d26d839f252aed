"""The worker's metrics: jobs run, the batches they store, and how long messages wait."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Histogram

from message_service.persistence.queued import PendingMessage

JOBS = Counter(
    "anonchat_worker_jobs_total",
    "Persist jobs this worker ran, by outcome (finished, or failed: RQ retries it or, "
    "retries spent, keeps it in its failed registry).",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "anonchat_worker_batch_size_messages",
    "Messages a persist job stored (its own and earlier ones of their conversations).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
STORED_LATENCY = Histogram(
    "anonchat_message_stored_latency_seconds",
    "Time from a message's acceptance (the 202) to its commit in Postgres.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def stored(messages: Iterable[PendingMessage]) -> None:
    """Note a job's stored messages: the batch's size and each one's wait."""
    now = time.time()
    count = 0
    for message in messages:
        STORED_LATENCY.observe(
            max(0.0, now - datetime.fromisoformat(message["created_at"]).timestamp())
        )
        count += 1
    BATCH_SIZE.observe(count)
