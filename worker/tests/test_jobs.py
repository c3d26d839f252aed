"""The persist job, run by an in-process RQ worker against real Postgres and Redis."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from common.ratelimit import Rate
from message_service.persistence import (
    PENDING_KEY,
    QUEUE_NAME,
    QueuedMessage,
    batch_key,
    user_channel,
)
from message_service.queue import JobOptions, MessageQueue, Send
from worker.main import MessageWorker

NO_RETRY = JobOptions(timeout=10, retry_intervals=[], failure_ttl=3600)
UNLIMITED = Rate(limit=1_000_000, period=1)


# Above any id a user gets in a test run: the messages these tests store share the
# database with the end-to-end tests' users, who must not see them.
NOBODY = 10**12


def message(content: str = "hello", receiver: int = 2) -> QueuedMessage:
    return QueuedMessage(
        id=uuid.uuid4().int % 10**15 + 10**15,
        content=content,
        sender_id=NOBODY + 1,
        receiver_id=NOBODY + receiver,
        created_at=datetime.now(UTC).isoformat(),
    )


def enqueue(queue: Queue, messages: list[QueuedMessage]) -> str:
    """Queue ``messages`` as a job of their own (it is full: nothing joins it)."""
    full = MessageQueue(queue.connection, NO_RETRY, max_batch=len(messages), send_rate=UNLIMITED)
    job_id = full.put([Send(m) for m in messages]).job_id
    assert job_id is not None
    return job_id


@pytest.fixture
def queue(unit_redis_url: str):
    connection = redis.Redis.from_url(unit_redis_url)
    yield Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    connection.close()


@pytest.fixture
def stored(messages_database_url: str):
    conninfo = messages_database_url.replace("+psycopg", "")

    def count(message_id: int) -> int:
        with psycopg.connect(conninfo) as connection:
            row = connection.execute(
                "SELECT count(*) FROM messages WHERE id = %s", (message_id,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    return count


async def test_the_same_batch_persisted_twice_leaves_one_row_each(queue, drain, stored) -> None:
    batch = [message("one"), message("two")]
    enqueue(queue, batch)
    drain()
    # The same messages again: a job that ran twice (a retry, a dead worker's requeue).
    enqueue(queue, batch)
    drain()
    assert [stored(m["id"]) for m in batch] == [1, 1]
    assert queue.connection.hget(PENDING_KEY, str(batch[0]["id"])) is None
    assert FailedJobRegistry(queue=queue).count == 0


async def test_batches_join_the_job_waiting_at_the_tail_while_it_has_room(
    queue, drain, stored
) -> None:
    messages = MessageQueue(queue.connection, NO_RETRY, max_batch=3, send_rate=UNLIMITED)
    first, second, third, fourth, fifth = (message(f"m{n}") for n in range(5))
    waiting = messages.put([Send(first)]).job_id
    assert waiting is not None
    replayable = Send(second, idempotency=("anonchat:test:idem", "answer", 60))
    assert messages.put([replayable, Send(third)]).job_id == waiting
    assert queue.connection.get("anonchat:test:idem") == b"answer"
    # Full: the next batch starts a job of its own.
    after_full = messages.put([Send(fourth)]).job_id
    assert after_full is not None
    assert after_full != waiting
    # A job a worker has taken gets nothing more.
    take_out_of_queue(queue, after_full)
    assert messages.put([Send(fifth)]).job_id not in (waiting, after_full)
    assert queue.count == 2
    Job.fetch(after_full, connection=queue.connection, serializer=JSONSerializer).perform()
    drain()
    assert [stored(m["id"]) for m in (first, second, third, fourth, fifth)] == [1] * 5
    assert not queue.connection.exists(batch_key(waiting), batch_key(after_full))
    ids = [str(m["id"]) for m in (first, second, third, fourth, fifth)]
    assert queue.connection.hmget(PENDING_KEY, ids) == [None] * 5


async def test_a_batch_queues_only_the_sends_within_their_senders_rate(queue) -> None:
    messages = MessageQueue(
        queue.connection, NO_RETRY, max_batch=10, send_rate=Rate(limit=2, period=60)
    )
    sender = uuid.uuid4().int % 10**9 + 10**9
    sends = [
        Send(message(f"r{n}") | {"sender_id": sender}, idempotency=(f"anonchat:test:{n}", "a", 60))
        for n in range(4)
    ]
    # A new job: the first two are within the rate, the third is not.
    put = messages.put(sends[:3])
    assert put.waits[:2] == [0, 0]
    assert 29_000 < put.waits[2] <= 30_000
    assert put.job_id is not None
    batch = queue.connection.lrange(batch_key(put.job_id), 0, -1)
    assert [json.loads(m)["content"] for m in batch] == ["r0", "r1"]
    # The waiting job has room, but the sender has no budget left.
    assert messages.put(sends[3:]).job_id is None
    assert queue.connection.llen(batch_key(put.job_id)) == 2
    records = [f"anonchat:test:{n}" for n in range(4)]
    assert [queue.connection.exists(r) for r in records] == [1, 1, 0, 0]
    assert queue.connection.hmget(PENDING_KEY, [str(s.message["id"]) for s in sends])[2:] == [
        None,
        None,
    ]


async def test_each_stored_message_is_announced_to_its_receiver(queue, drain) -> None:
    sent = message("ping", receiver=uuid.uuid4().int % 10**9 + 10**9)
    pubsub = queue.connection.pubsub()
    pubsub.subscribe(user_channel(sent["receiver_id"]))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    enqueue(queue, [sent])
    drain()
    announced = pubsub.get_message(timeout=5)
    pubsub.close()
    assert announced is not None
    assert json.loads(announced["data"]) == sent


async def test_each_field_is_stored_as_sent(queue, drain, messages_database_url) -> None:
    # Content that JSON escapes: the batch reaches Postgres as one JSON document.
    sent = message('Привет 👋 "quoted" back\\slash\nnew line\ttab')
    enqueue(queue, [sent])
    drain()
    with psycopg.connect(messages_database_url.replace("+psycopg", "")) as connection:
        row = connection.execute(
            "SELECT content, sender_id, receiver_id, created_at FROM messages WHERE id = %s",
            (sent["id"],),
        ).fetchone()
    assert row == (
        sent["content"],
        sent["sender_id"],
        sent["receiver_id"],
        datetime.fromisoformat(sent["created_at"]),
    )


async def test_a_poison_message_fails_its_job_alone_and_can_be_requeued(
    queue, drain, stored
) -> None:
    good, poison = message("fine"), message("bad\x00")
    job_id = enqueue(queue, [good, poison])
    drain()
    assert stored(good["id"]) == 1
    assert stored(poison["id"]) == 0
    failed = FailedJobRegistry(queue=queue)
    assert job_id in failed.get_job_ids()
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    reason = job.latest_result()
    assert reason is not None
    assert f"the database refused messages [{poison['id']}]" in str(reason.exc_string)
    # Good messages after it are not blocked.
    later = message("after")
    enqueue(queue, [later])
    drain()
    assert stored(later["id"]) == 1
    # An operator can requeue it (with RQ's own tools); the good message stays single.
    failed.requeue(job_id)
    assert job_id in queue.get_job_ids()
    drain()
    assert stored(good["id"]) == 1


def test_a_dead_workers_job_counts_as_abandoned_soon_after_its_timeout(queue) -> None:
    worker = MessageWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    worker.heartbeat_grace = 3
    job = Job.create("worker.jobs.persist_batch", connection=queue.connection, timeout=20)
    assert worker.get_heartbeat_ttl(job) == 23


def seqs(messages_database_url: str, ids: list[int]) -> list[int]:
    with psycopg.connect(messages_database_url.replace("+psycopg", "")) as connection:
        rows = connection.execute(
            "SELECT id FROM messages WHERE id = ANY(%s) ORDER BY seq", (ids,)
        ).fetchall()
    return [row[0] for row in rows]


def stored_after(messages_database_url: str, message_id: int, since: datetime) -> float:
    """Seconds from ``since`` until the database stored the message (the database's own
    clock, so that the time the worker takes to shut down does not count)."""
    with psycopg.connect(messages_database_url.replace("+psycopg", "")) as connection:
        row = connection.execute(
            "SELECT persisted_at FROM messages WHERE id = %s", (message_id,)
        ).fetchone()
    assert row is not None
    return float((row[0] - since).total_seconds())


def database_now(messages_database_url: str) -> datetime:
    with psycopg.connect(messages_database_url.replace("+psycopg", "")) as connection:
        row = connection.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def take_out_of_queue(queue: Queue, job_id: str) -> None:
    """As if another worker had taken the job and were running it."""
    assert queue.connection.lrem(queue.key, 0, job_id) == 1
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    job.set_status(JobStatus.STARTED)


async def test_a_later_message_waits_for_an_earlier_one_of_its_conversation(
    queue, drain, messages_database_url, worker_settings
) -> None:
    first, second = message("first", receiver=7), message("second", receiver=7)
    first_job = enqueue(queue, [first])
    enqueue(queue, [second])
    take_out_of_queue(queue, first_job)

    def other_worker_stores_first() -> None:
        time.sleep(0.2)
        Job.fetch(first_job, connection=queue.connection, serializer=JSONSerializer).perform()

    other = threading.Thread(target=other_worker_stores_first)
    started = database_now(messages_database_url)
    other.start()
    drain()
    other.join()
    assert seqs(messages_database_url, [first["id"], second["id"]]) == [first["id"], second["id"]]
    # Stored as soon as the first was, not when the hold ran out.
    waited = stored_after(messages_database_url, second["id"], started)
    assert 0.2 <= waited < worker_settings.order_hold_seconds


async def test_the_wait_for_an_earlier_message_is_bounded(
    queue, drain, stored, worker_settings, messages_database_url
) -> None:
    first, second = message("stuck", receiver=8), message("not stuck", receiver=8)
    first_job = enqueue(queue, [first])
    enqueue(queue, [second])
    take_out_of_queue(queue, first_job)
    started = database_now(messages_database_url)
    drain()
    assert (stored(first["id"]), stored(second["id"])) == (0, 1)
    waited = stored_after(messages_database_url, second["id"], started)
    assert worker_settings.order_hold_seconds <= waited < 2 * worker_settings.order_hold_seconds
    queue.connection.rpush(queue.key, first_job)
    drain()
    assert stored(first["id"]) == 1


async def test_a_lone_worker_does_not_stall_behind_a_job_queued_after_its_own(
    queue, drain, stored, worker_settings, messages_database_url
) -> None:
    """An earlier message whose job is queued behind this one (its replica was slower to
    queue it) cannot be stored first by a lone worker: the hold behind it is short."""
    first, second = message("accepted first", receiver=11), message("queued first", receiver=11)
    enqueue(queue, [second])
    enqueue(queue, [first])
    started = database_now(messages_database_url)
    drain()
    assert (stored(first["id"]), stored(second["id"])) == (1, 1)
    waited = stored_after(messages_database_url, second["id"], started)
    assert waited < worker_settings.order_hold_seconds


async def test_messages_of_other_conversations_are_not_held(
    queue, drain, stored, worker_settings, messages_database_url
) -> None:
    stuck = message("stuck", receiver=9)
    stuck_job = enqueue(queue, [stuck])
    free = message("elsewhere", receiver=10)
    enqueue(queue, [free])
    take_out_of_queue(queue, stuck_job)
    started = database_now(messages_database_url)
    drain()
    assert stored(free["id"]) == 1
    waited = stored_after(messages_database_url, free["id"], started)
    assert waited < worker_settings.order_hold_seconds
    queue.connection.rpush(queue.key, stuck_job)
    drain()
