"""Start one worker on the messages queue: ``python -m worker``.

A ``SimpleWorker`` (no fork per job): a forking worker opens a database connection in
each fork, which made it an order of magnitude slower here (figures in the README).
Scale out by starting more processes against the same Redis.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from common.lifetime import die_with_parent
from common.logging import configure_logging
from common.metrics import dependency_error, serve_metrics
from message_service.persistence.queued import QUEUE_NAME
from message_service.persistence.rq_layout import delete_finished_job, forget_dead_executions

# Jobs name worker.jobs by dotted path; importing it here spares the first job the cost.
from worker import jobs, metrics
from worker.check import OK, StatusFile
from worker.config import get_settings

log = logging.getLogger(__name__)
# While Redis is away, a new worker is tried after this, then twice as long up to the cap.
REDIS_RETRY_SECONDS = 1.0
MAX_REDIS_RETRY_SECONDS = 30.0
# RQ's loop renews the worker's lifetime three times around each job: one renewing the
# same lifetime this soon after the last is skipped.
HEARTBEAT_SECONDS = 1.0


class MessageWorker(SimpleWorker):
    """A SimpleWorker whose running job keeps a short heartbeat, renewed while the job
    waits for Postgres, so that a dead worker's job is requeued soon and a waiting one
    never is. Each heartbeat also goes to the status file its probe reads, with what
    keeps the worker from working, if anything.

    Every Redis write is a round trip and an fsync (``appendfsync always``), and each
    job waits for those of the job before it on its worker: this one leaves out RQ's
    writes that change nothing (a heartbeat repeated within ``HEARTBEAT_SECONDS``, a
    state it is in already), sends a heartbeat's two commands together, and ends a
    finished job without RQ's reads."""

    def __init__(
        self, *args: object, context: jobs.JobContext, status: StatusFile, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.context = context
        self.status = status
        self.health = OK
        # When the last heartbeat was sent (monotonic), and the lifetime it gave.
        self.beat: tuple[float, int] | None = None
        context.report = self.report

    def report(self, problem: str | None) -> None:
        """Note what keeps this worker from working (None: nothing any more)."""
        self.health = problem or OK
        self.status.record(self.health, fresh_for=self.worker_ttl + 60)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat, also noted in the status file the container's probe reads."""
        # RQ takes a worker for alive this long after a heartbeat (its default).
        lifetime = timeout or self.worker_ttl + 60
        now = time.monotonic()
        if pipeline is not None:
            super().heartbeat(lifetime, pipeline)
        elif (
            self.beat is None or self.beat[1] != lifetime or now - self.beat[0] >= HEARTBEAT_SECONDS
        ):
            with self.connection.pipeline(transaction=False) as own:
                super().heartbeat(lifetime, own)
                own.execute()
        else:
            return
        self.beat = (now, lifetime)
        self.status.record(self.health, fresh_for=lifetime)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's, but for a state the worker is in already."""
        if pipeline is not None or state != self.get_state():
            super().set_state(state, pipeline)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry
    ) -> None:
        """RQ's, for the jobs of this queue (no dependents, no repeats, no result kept):
        the same writes in one transaction, without its 11 reads first (the dependents
        none of them has, the job's status and runs, read back), while the messages it
        stored are being delivered on the same cores."""
        # RQ sets both in perform_job before it calls this.
        assert job.started_at is not None
        assert job.ended_at is not None
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            self.cleanup_execution(job, pipeline=pipeline)
            delete_finished_job(pipeline, job)
            pipeline.execute()

    def get_heartbeat_ttl(self, job: Job) -> int:
        """The configured heartbeat of a running job, whatever its timeout."""
        return self.context.settings.heartbeat_ttl_seconds

    def perform_job(self, job: Job, queue: Queue) -> bool:
        """Run ``job``, renewing its heartbeat whenever it waits. Runs of it that died with
        their worker are forgotten first: RQ would fail the job over them once it ends."""
        forget_dead_executions(
            self.connection, job.id, running=self.execution.id if self.execution else None
        )
        self.context.keep_alive = lambda: self.maintain_heartbeats(job)
        try:
            finished = bool(super().perform_job(job, queue))
            metrics.JOBS.labels("finished" if finished else "failed").inc()
            return finished
        finally:
            self.context.keep_alive = lambda: None


def build_worker(context: jobs.JobContext, redis: Redis) -> MessageWorker:
    """A worker on the messages queue whose jobs use ``context``."""
    settings = context.settings
    jobs.install(context)
    queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
    return MessageWorker(
        [queue],
        connection=redis,
        serializer=JSONSerializer,
        maintenance_interval=settings.maintenance_interval_seconds,
        worker_ttl=settings.worker_ttl_seconds,
        context=context,
        status=StatusFile(settings.status_file),
    )


def _in_forked_child(context: jobs.JobContext) -> None:
    # RQ runs its scheduler in a forked child: it must not outlive the worker, nor touch
    # the worker's database connections.
    die_with_parent(signal.SIGKILL)
    context.engine.dispose(close=False)


def main() -> None:
    """Work until SIGTERM or SIGINT (the current job is finished first).

    RQ's worker exits when Redis goes away under it; this one starts a new worker once
    Redis answers again, backing off, so that a Redis restart needs no operator. A job
    cut short that way is requeued by the maintenance pass, as a dead worker's would be.
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    context = jobs.JobContext(settings=settings, engine=jobs.create_database_engine(settings))
    os.register_at_fork(after_in_child=lambda: _in_forked_child(context))
    delay = REDIS_RETRY_SECONDS
    while True:
        redis = Redis.from_url(settings.redis_url)
        try:
            worker = build_worker(context, redis)
            # What is loaded by now lives as long as the process: full collections skip it
            # (see common.app).
            gc.freeze()
            worker.work(with_scheduler=True, logging_level=settings.log_level)
            return
        except (RedisConnectionError, RedisTimeoutError):
            dependency_error("redis")
            log.warning("lost Redis; a new worker starts in %.0f s", delay, exc_info=True)
            # RQ's handlers would ask a dead worker to stop: while waiting, a signal
            # ends the process at once, cleanly (no job is running).
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            signal.signal(signal.SIGINT, signal.default_int_handler)
            time.sleep(delay)
            delay = min(delay * 2, MAX_REDIS_RETRY_SECONDS)
        finally:
            redis.close()
