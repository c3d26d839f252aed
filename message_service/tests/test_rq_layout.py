"""RQ's Redis layout as message_service.persistence.rq_layout names it: these fail if an
RQ release changes what the queueing script and the worker rely on."""

import uuid

import pytest
import redis
from rq import Queue
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus

from message_service.persistence import rq_layout
from message_service.persistence.queued import PERSIST_JOB


@pytest.fixture
def queue(unit_redis_url: str):
    connection = redis.Redis.from_url(unit_redis_url)
    name = f"layout-{uuid.uuid4().hex[:8]}"
    yield rq_layout.messages_queue(connection, name)
    connection.close()


def test_rqs_own_enqueue_writes_the_keys_we_name(queue: Queue) -> None:
    job = queue.enqueue_call("builtins.print", kwargs={"sep": ""})
    connection = queue.connection
    assert queue.key == rq_layout.queue_key(queue.name)
    assert connection.lrange(rq_layout.queue_key(queue.name), 0, -1) == [job.id.encode()]
    assert connection.sismember(rq_layout.QUEUES_SET, queue.key)
    assert connection.hget(rq_layout.job_key(job.id), rq_layout.STATUS_FIELD) == b"queued"
    job.set_status(JobStatus.FAILED)
    failed = connection.hget(rq_layout.job_key(job.id), rq_layout.STATUS_FIELD)
    assert failed == rq_layout.FAILED.encode()


def test_a_job_written_from_its_fields_is_one_rq_reads(queue: Queue) -> None:
    """What the queueing script does: HSET the fields, RPUSH the id, SADD the queue."""
    job_id = f"persist-{uuid.uuid4().hex}"
    fields = rq_layout.persist_job_fields(
        queue, job_id=job_id, kwargs={"batch": "b"}, retry_intervals=[0, 1], failure_ttl=60
    )
    connection = queue.connection
    connection.hset(
        rq_layout.job_key(job_id), mapping=dict(zip(fields[::2], fields[1::2], strict=True))
    )
    connection.rpush(rq_layout.queue_key(queue.name), job_id)
    job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
    assert (job.func_name, job.kwargs) == (PERSIST_JOB, {"batch": "b"})
    assert job.get_status() == JobStatus.QUEUED
    assert job.timeout == -1
    assert (job.retries_left, job.retry_intervals) == (2, [0, 1])
    assert job.enqueue_at_front_on_retry
    assert job.failure_ttl == 60
    assert job.result_ttl == 0
    assert queue.job_ids == [job_id]


def test_a_run_whose_record_expired_breaks_rqs_cleanup_until_forgotten(queue: Queue) -> None:
    """A dead worker's run stays listed after its record expires; RQ's delete (which a
    job with result_ttl=0 gets when it finishes) fails over it."""
    job = queue.enqueue_call("builtins.print", result_ttl=0)
    connection = queue.connection
    with connection.pipeline() as pipe:
        dead = Execution.create(job, ttl=60, pipeline=pipe)
        pipe.execute()
    connection.delete(dead.key)  # as its expiry would
    assert ExecutionRegistry(job_id=job.id, connection=connection).get_execution_ids() == [dead.id]
    with connection.pipeline() as pipe, pytest.raises(ValueError, match="not found in Redis"):
        job.delete(pipeline=pipe)
    # The run a worker is in is never looked up (it has just been created).
    assert rq_layout.forget_dead_executions(connection, job.id, running=dead.id) == 0
    assert rq_layout.forget_dead_executions(connection, job.id) == 1
    with connection.pipeline() as pipe:
        job.delete(pipeline=pipe)
        pipe.execute()
    assert not connection.exists(rq_layout.job_key(job.id))
