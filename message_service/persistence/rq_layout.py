"""RQ's Redis layout, in one place: the few RQ keys and fields anonchat reads or writes
itself rather than through RQ's API. ``message_service/tests/test_rq_layout.py`` fails if
RQ changes them under us.

- The queueing script creates each persist job itself (in the same atomic step as the
  messages it carries), so it writes the job hash that RQ's own enqueue would write,
  pushes the job id onto the queue list and registers the queue.
- A job's status field tells ``/messages/{id}`` whether its message failed.
- A job requeued after its worker died still lists the dead run among its executions
  after that run's record has expired; RQ then fails in its own bookkeeping when the job
  finishes (``Execution ... not found in Redis``), so the worker forgets such runs first.
- A finished persist job is deleted by the worker without RQ's reads of its status and
  runs (``delete_finished_job``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from message_service.persistence.queued import PERSIST_JOB

# RQ's set of every queue's key, which its tools (rq info) list queues from.
QUEUES_SET: str = Queue.redis_queues_keys
STATUS_FIELD = "status"
FAILED = JobStatus.FAILED.value


def queue_key(name: str) -> str:
    """The Redis list RQ keeps a queue's waiting job ids in (KEDA scales workers on it)."""
    return Queue.redis_queue_namespace_prefix + name


def job_key(job_id: str) -> str:
    """The Redis hash of an RQ job."""
    key: str = Job.key_for(job_id)
    return key


def persist_job_fields(
    queue: Queue,
    *,
    job_id: str,
    kwargs: Mapping[str, Any],
    retry_intervals: list[int],
    failure_ttl: int,
) -> list[str | bytes]:
    """The hash RQ's enqueue writes for a new, queued persist job, as field, value, ...

    Built by RQ itself (``Queue.create_job``), as RQ's own unique-enqueue script does
    (``rq.scripts``). No timeout: a job that cannot reach Postgres waits for it, keeping
    its worker's heartbeat alive (see worker/jobs.py)."""
    job = queue.create_job(
        PERSIST_JOB,
        kwargs=dict(kwargs),
        job_id=job_id,
        timeout=-1,
        result_ttl=0,
        failure_ttl=failure_ttl,
        description="persist a batch of messages",
        retry=(
            Retry(max=len(retry_intervals), interval=retry_intervals, enqueue_at_front=True)
            if retry_intervals
            else None
        ),
    )
    job.enqueued_at = now()
    fields: list[str | bytes] = []
    for name, value in job.to_dict().items():
        if value is not None:
            fields += [name, value if isinstance(value, bytes | str) else str(value)]
    return fields


def delete_finished_job(pipeline: Pipeline, job: Job) -> None:
    """Delete what RQ keeps of a finished ``job`` whose result is not kept
    (``result_ttl=0``) and whose one run is the one that just ended (RQ's
    ``cleanup_execution`` removes that run), as RQ's ``Job.delete`` would, without first
    reading back the job's status three times and its runs twice."""
    pipeline.delete(job.key, job.dependents_key, job.dependencies_key, job.execution_registry.key)


def messages_queue(connection: Redis, name: str) -> Queue:
    """The RQ queue of persist jobs (JSON arguments only)."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def forget_dead_executions(connection: Redis, job_id: str, *, running: str | None = None) -> int:
    """Drop the runs of ``job_id`` whose records have expired (a dead worker's), other than
    the ``running`` one; returns how many. For a job's first run, one round trip."""
    registry = ExecutionRegistry(job_id=job_id, connection=connection)
    members = cast("list[bytes]", connection.zrange(registry.key, 0, -1))
    ids = [run for run in (member.decode() for member in members) if run != running]
    if not ids:
        return 0
    with connection.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.exists(Execution(execution_id, job_id, connection).key)
        present = pipe.execute()
    dead = [execution_id for execution_id, found in zip(ids, present, strict=True) if not found]
    if dead:
        connection.zrem(registry.key, *dead)
    return len(dead)
