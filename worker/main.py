"""Start one worker on the messages queue: ``python -m worker``.

A ``SimpleWorker`` (no fork per job): measured here, the forking worker ran 72 no-op and
13 one-insert jobs/s, ``SimpleWorker`` 278 and 218, since each fork opened its own
database connection. Scale out by starting more processes against the same Redis.
"""

from __future__ import annotations

import gc
import logging
import signal
import time

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

# Jobs name worker.jobs by dotted path; importing it here spares the first job the cost.
import worker.jobs  # noqa: F401
from common.logging import configure_logging
from message_service.persistence import QUEUE_NAME
from worker.check import OK, StatusFile
from worker.config import Settings, get_settings

log = logging.getLogger(__name__)


class MessageWorker(SimpleWorker):
    """A SimpleWorker whose jobs count as abandoned soon after their timeout.

    RQ gives a SimpleWorker's job ``timeout + 60`` seconds before a maintenance pass may
    take it for abandoned. A live SimpleWorker kills a job at its timeout, so a few
    seconds of grace suffice, and a dead worker's job is requeued that much sooner.
    """

    heartbeat_grace = 5
    status: StatusFile | None = None

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat, also noted in the status file the container's probe reads."""
        super().heartbeat(timeout, pipeline)
        if self.status is not None:
            # RQ takes a worker for alive this long after a heartbeat (its default below).
            self.status.record(OK, fresh_for=timeout or self.worker_ttl + 60)

    def get_heartbeat_ttl(self, job: Job) -> int:
        """The job timeout plus a short grace."""
        if not job.timeout or job.timeout < 0:
            return int(super().get_heartbeat_ttl(job))
        return int(job.timeout) + self.heartbeat_grace


def build_worker(settings: Settings, redis: Redis) -> MessageWorker:
    """A worker on the messages queue with this deployment's maintenance settings."""
    queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
    worker = MessageWorker(
        [queue],
        connection=redis,
        serializer=JSONSerializer,
        maintenance_interval=settings.maintenance_interval_seconds,
        worker_ttl=settings.worker_ttl_seconds,
    )
    worker.heartbeat_grace = settings.heartbeat_grace_seconds
    worker.status = StatusFile(settings.status_file)
    return worker


def main() -> None:
    """Work until SIGTERM or SIGINT (the current job is finished first).

    RQ's worker exits when Redis goes away under it; this one starts a new worker once
    Redis answers again, backing off, so that a Redis restart needs no operator. A job
    cut short that way is requeued by the maintenance pass, as a dead worker's would be.
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    delay = 1.0
    while True:
        redis = Redis.from_url(settings.redis_url)
        try:
            worker = build_worker(settings, redis)
            # What is loaded by now lives as long as the process: full collections skip it
            # (see common.app).
            gc.freeze()
            worker.work(with_scheduler=True, logging_level=settings.log_level)
            return
        except (RedisConnectionError, RedisTimeoutError):
            log.warning("lost Redis; a new worker starts in %.0f s", delay, exc_info=True)
            # RQ's handlers would ask a dead worker to stop: while waiting, a signal
            # ends the process at once (no job is running).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        finally:
            redis.close()
