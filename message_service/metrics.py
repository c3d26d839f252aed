"""message_service's metrics: the messages it queues, and the queue as Redis holds it.

The queue's gauges are read from Redis when Prometheus scrapes (a custom collector), from
the state the queueing script and the workers already keep: the pending hash, the batch
lists, RQ's queue list and registries, RQ's worker records. So every replica reports the
same, whole-queue figures (take ``max``, not ``sum``, across replicas), and no count is
kept beside the state it would have to agree with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import cast

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from common.metrics import dependency_error
from message_service.persistence.queued import PENDING_KEY, batch_key, parse_pending_entry

log = logging.getLogger(__name__)

MESSAGES_QUEUED = Counter(
    "anonchat_messages_queued_total",
    "Messages accepted and handed to the queue (repeats of an Idempotency-Key not counted).",
)


class QueueCollector(Collector):
    """The queue's gauges, read from Redis at each scrape."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.redis: Redis = queue.connection
        self.started: StartedJobRegistry = queue.started_job_registry
        self.scheduled: ScheduledJobRegistry = queue.scheduled_job_registry
        self.failed: FailedJobRegistry = queue.failed_job_registry

    def describe(self) -> list[Metric]:
        """Nothing: the registry would otherwise collect, and so read Redis, as it is
        registered. One is registered per process, where the metrics port is served."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges, or none if Redis does not answer (Prometheus then shows a gap)."""
        try:
            yield from self._read()
        except RedisError as exc:
            dependency_error("redis")
            log.warning("queue metrics not read (Redis unavailable): %s", exc)

    def _read(self) -> Iterator[Metric]:
        # Read with cleanup=False: a scrape must never move jobs between RQ's registries.
        jobs = GaugeMetricFamily(
            "anonchat_queue_jobs",
            "Persist jobs by state: queued (waiting for a worker, or taken by one that has "
            "not started it yet), started, scheduled (waiting to be retried) and failed "
            "(kept for an operator to requeue).",
            labels=["state"],
        )
        taken = self.redis.llen(self.queue.intermediate_queue_key)
        jobs.add_metric(["queued"], self.queue.count + taken)
        jobs.add_metric(["started"], self.started.get_job_count(cleanup=False))
        jobs.add_metric(["scheduled"], self.scheduled.get_job_count(cleanup=False))
        jobs.add_metric(["failed"], self.failed.get_job_count(cleanup=False))
        yield jobs
        yield GaugeMetricFamily(
            "anonchat_queue_pending_messages",
            "Messages accepted and not stored yet (those of failed jobs included).",
            value=self.redis.hlen(PENDING_KEY),
        )
        yield GaugeMetricFamily(
            "anonchat_queue_oldest_pending_age_seconds",
            "Age of the oldest message waiting in a queued, started or scheduled job "
            "(0 when none waits); failed jobs' messages are counted by anonchat_queue_jobs.",
            value=self._oldest_pending_age(),
        )
        workers = GaugeMetricFamily(
            "anonchat_queue_workers",
            "RQ workers on the messages queue, by state (busy: running a job).",
            labels=["state"],
        )
        states = [worker.get_state() for worker in Worker.all(queue=self.queue)]
        for state in ("busy", "idle"):
            workers.add_metric([state], states.count(state))
        yield workers

    def _oldest_pending_age(self) -> float:
        """The oldest message is in a job that has left the queue (taken by a worker that
        has not started it yet, started, or waiting to be retried) or in the job at the
        queue's head: jobs are queued in acceptance order, a retried one at the front."""
        job_ids = {
            *self.queue.get_job_ids(0, 1),
            *self.queue.intermediate_queue.get_job_ids(),
            *self.started.get_job_ids(cleanup=False),
            *self.scheduled.get_job_ids(cleanup=False),
        }
        if not job_ids:
            return 0.0
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.lrange(batch_key(job_id), 0, -1)
            batches: list[list[bytes]] = pipe.execute()
        ids = [message_id for batch in batches for message_id in batch]
        if not ids:
            return 0.0
        values = cast("list[bytes | None]", self.redis.hmget(PENDING_KEY, ids))
        accepted = [
            datetime.fromisoformat(parse_pending_entry(value)["created_at"]).timestamp()
            for value in values
            if value is not None
        ]
        return max(0.0, time.time() - min(accepted)) if accepted else 0.0
