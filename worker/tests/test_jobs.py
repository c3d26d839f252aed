"""The persist job, run by an in-process RQ worker against real Postgres and Redis."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from common.ratelimit import Rate
from message_service.enqueue import Accepted, JobOptions, MessageQueue, Submission
from message_service.persistence.queued import (
    ANNOUNCED_BYTES,
    IDEMPOTENCY_MARGIN_SECONDS,
    PENDING_KEY,
    QUEUE_NAME,
    STORED_CHANNEL,
    PendingMessage,
    batch_key,
    conversation_key,
    idempotency_record_key,
)
from stack.infra import libpq
from stack.processes import free_port
from worker import check, jobs
from worker.main import HEARTBEAT_SECONDS, MessageWorker, build_worker

NO_RETRY = JobOptions(retry_intervals=[], failure_ttl=3600)
UNLIMITED = Rate(limit=1_000_000, period=1)


def people() -> tuple[int, int]:
    """A sender and a receiver no other test uses."""
    base = uuid.uuid4().int % 10**9 * 10
    return base + 1, base + 2


def message(content: str = "hello", pair: tuple[int, int] | None = None) -> PendingMessage:
    sender, receiver = pair or people()
    return PendingMessage(
        id=uuid.uuid4().int % 10**15 + 10**15,
        content=content,
        sender_id=sender,
        receiver_id=receiver,
        created_at=datetime.now(UTC).isoformat(),
    )


def later(first: PendingMessage, content: str) -> PendingMessage:
    """A message of the same conversation, accepted a millisecond after ``first``."""
    created = datetime.fromisoformat(first["created_at"]) + timedelta(milliseconds=1)
    return message(content, (first["receiver_id"], first["sender_id"])) | {
        "created_at": created.isoformat()
    }


def enqueue(queue: Queue, messages: list[PendingMessage], max_batch: int | None = None) -> str:
    """Queue ``messages`` as a job of their own (full, by default: nothing joins it)."""
    full = MessageQueue(
        queue.connection, NO_RETRY, max_batch=max_batch or len(messages), send_rate=UNLIMITED
    )
    job_id, outcomes = full.enqueue([Submission(m) for m in messages])
    assert all(isinstance(o, Accepted) for o in outcomes), outcomes
    assert job_id is not None
    return job_id


@pytest.fixture
def queue(unit_redis_url: str, job_context):
    # Jobs run here directly (Job.perform) use the context a worker would install.
    jobs.install(job_context)
    connection = redis.Redis.from_url(unit_redis_url)
    yield Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    connection.close()


@pytest.fixture
def database(messages_database_url: str):
    with psycopg.connect(libpq(messages_database_url), autocommit=True) as db:
        yield db


def stored_in_order(database, messages: list[PendingMessage]) -> list[int]:
    """The ids of ``messages`` that are stored, in storage (cursor) order."""
    rows = database.execute(
        "SELECT id FROM messages WHERE id = ANY(%s) ORDER BY seq", ([m["id"] for m in messages],)
    ).fetchall()
    return [row[0] for row in rows]


def take_out_of_queue(queue: Queue, job_id: str) -> Job:
    """As if another worker had taken the job and were running it."""
    assert queue.connection.lrem(queue.key, 0, job_id) == 1
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    job.set_status(JobStatus.STARTED)
    return job


async def test_the_same_batch_persisted_twice_leaves_one_row_each(queue, drain, database) -> None:
    batch = [message("one"), message("two")]
    first = enqueue(queue, batch)
    drain()
    # The same messages again: a job that ran twice (a retry, a dead worker's requeue).
    again = enqueue(queue, batch)
    drain()
    assert sorted(stored_in_order(database, batch)) == sorted(m["id"] for m in batch)
    assert queue.connection.hget(PENDING_KEY, str(batch[0]["id"])) is None
    assert not {first, again} & set(FailedJobRegistry(queue=queue).get_job_ids())


async def test_batches_join_the_job_waiting_at_the_tail_while_it_has_room(
    queue, drain, database
) -> None:
    messages = MessageQueue(queue.connection, NO_RETRY, max_batch=3, send_rate=UNLIMITED)
    first, second, third, fourth, fifth = (message(f"m{n}") for n in range(5))
    waiting, _ = messages.enqueue([Submission(first)])
    assert waiting is not None
    assert messages.enqueue([Submission(second), Submission(third)])[0] == waiting
    ids = [int(i) for i in queue.connection.lrange(batch_key(waiting), 0, -1)]
    assert ids == [first["id"], second["id"], third["id"]]
    # Full: the next batch starts a job of its own.
    after_full, _ = messages.enqueue([Submission(fourth)])
    assert after_full not in (None, waiting)
    assert after_full is not None
    # A job a worker has taken gets nothing more.
    take_out_of_queue(queue, after_full).perform()
    assert messages.enqueue([Submission(fifth)])[0] not in (waiting, after_full)
    assert queue.count == 2
    drain()
    everything = [first, second, third, fourth, fifth]
    assert len(stored_in_order(database, everything)) == 5
    assert not queue.connection.exists(batch_key(waiting), batch_key(after_full))
    assert queue.connection.hmget(PENDING_KEY, [str(m["id"]) for m in everything]) == [None] * 5


async def test_a_batch_queues_only_the_sends_within_their_senders_rate(queue) -> None:
    messages = MessageQueue(
        queue.connection, NO_RETRY, max_batch=10, send_rate=Rate(limit=2, period=60)
    )
    pair = people()
    sends = [Submission(message(f"r{n}", pair)) for n in range(4)]
    # A new job: the first two are within the rate, the third is not.
    job_id, outcomes = messages.enqueue(sends[:3])
    assert [type(o).__name__ for o in outcomes] == ["Accepted", "Accepted", "TooManyRequests"]
    assert outcomes[2].headers == {"Retry-After": "30"}  # type: ignore[union-attr]
    assert job_id is not None
    held = queue.connection.lrange(batch_key(job_id), 0, -1)
    assert [int(i) for i in held] == [sends[0].message["id"], sends[1].message["id"]]
    # The waiting job has room, but the sender has no budget left.
    assert messages.enqueue(sends[3:])[0] is None
    assert queue.connection.llen(batch_key(job_id)) == 2
    pending = queue.connection.hmget(PENDING_KEY, [str(s.message["id"]) for s in sends])
    assert [entry is not None for entry in pending] == [True, True, False, False]


async def test_a_repeated_key_is_answered_by_its_record_in_the_same_script(queue) -> None:
    messages = MessageQueue(queue.connection, NO_RETRY, max_batch=10, send_rate=UNLIMITED)
    key_hash = uuid.uuid4().hex * 2
    first, again = message("once"), message("once")
    again["sender_id"], again["receiver_id"] = first["sender_id"], first["receiver_id"]
    sends = [Submission(m | {"idempotency_key": key_hash}, fingerprint="f") for m in (first, again)]
    other = Submission(message("else") | {"idempotency_key": key_hash}, fingerprint="g")
    other.message["sender_id"] = first["sender_id"]
    _, outcomes = messages.enqueue([*sends, other])
    assert outcomes[0] == Accepted(first["id"], datetime.fromisoformat(first["created_at"]))
    assert outcomes[1] == Accepted(
        first["id"], datetime.fromisoformat(first["created_at"]), replayed=True
    )
    assert type(outcomes[2]).__name__ == "Conflict"
    record = idempotency_record_key(first["sender_id"], key_hash)
    assert queue.connection.ttl(record) > IDEMPOTENCY_MARGIN_SECONDS
    assert queue.connection.hget(PENDING_KEY, str(again["id"])) is None


async def test_once_stored_a_messages_idempotency_record_lives_only_a_margin(queue, drain) -> None:
    sent = message("keyed") | {"idempotency_key": uuid.uuid4().hex * 2}
    MessageQueue(queue.connection, NO_RETRY, max_batch=10, send_rate=UNLIMITED).enqueue(
        [Submission(sent, fingerprint="f")]
    )
    drain()
    record = idempotency_record_key(sent["sender_id"], sent["idempotency_key"])
    assert 0 < queue.connection.ttl(record) <= IDEMPOTENCY_MARGIN_SECONDS


def announced_on_storing(queue: Queue, drain, sent: PendingMessage) -> dict[str, Any]:
    """The announcement of ``sent`` once a worker has stored it."""
    pubsub = queue.connection.pubsub()
    pubsub.subscribe(STORED_CHANNEL)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    enqueue(queue, [sent])
    drain()
    announced = pubsub.get_message(timeout=5)
    pubsub.close()
    assert announced is not None
    body: dict[str, Any] = json.loads(announced["data"])
    return body


async def test_each_stored_batch_is_announced(queue, drain, database) -> None:
    sent = message("ping")
    body = announced_on_storing(queue, drain, sent)
    assert body["ids"] == [sent["id"]]
    cursor = database.execute("SELECT seq FROM messages WHERE id = %s", (sent["id"],)).fetchone()
    assert body["up_to"] == cursor[0]
    # It carries the message, for the streams' hubs.
    assert body["messages"] == [{"cursor": cursor[0], "hidden": False, **sent}]


async def test_a_batch_too_big_to_carry_is_announced_without_its_messages(
    queue, drain, database
) -> None:
    sent = message("x" * ANNOUNCED_BYTES)
    body = announced_on_storing(queue, drain, sent)
    assert (body["ids"], body["messages"]) == ([sent["id"]], [])
    cursor = database.execute("SELECT seq FROM messages WHERE id = %s", (sent["id"],)).fetchone()
    assert body["up_to"] == cursor[0]


async def test_each_field_is_stored_as_sent(queue, drain, database) -> None:
    # Content that JSON escapes: the batch reaches Postgres as one JSON document.
    sent = message('Привет 👋 "quoted" back\\slash\nnew line\ttab')
    enqueue(queue, [sent])
    drain()
    row = database.execute(
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
    queue, drain, database
) -> None:
    good, poison = message("fine"), message("bad\x00")
    job_id = enqueue(queue, [good, poison])
    drain()
    assert stored_in_order(database, [good, poison]) == [good["id"]]
    failed = FailedJobRegistry(queue=queue)
    assert job_id in failed.get_job_ids()
    job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
    reason = job.latest_result()
    assert reason is not None
    assert f"the database refused messages [{poison['id']}]" in str(reason.exc_string)
    # Its status stays readable, its job can run again; nothing of its conversation
    # waits for it.
    assert queue.connection.hget(PENDING_KEY, str(poison["id"])) is not None
    assert queue.connection.exists(batch_key(job_id))
    key = conversation_key(poison["sender_id"], poison["receiver_id"])
    assert queue.connection.zscore(key, str(poison["id"])) is None
    # A later message of its conversation is stored; the poison is not.
    after = later(poison, "after")
    enqueue(queue, [after])
    drain()
    assert stored_in_order(database, [poison, after]) == [after["id"]]
    # An operator can requeue it (with RQ's own tools); the good message stays single.
    failed.requeue(job_id)
    assert job_id in queue.get_job_ids()
    drain()
    assert stored_in_order(database, [good, poison]) == [good["id"]]
    assert job_id in failed.get_job_ids()
    failed.remove(job_id, delete_job=True)
    queue.connection.hdel(PENDING_KEY, str(poison["id"]))


def test_a_running_jobs_heartbeat_is_the_configured_one(queue, job_context) -> None:
    worker = build_worker(job_context, queue.connection)
    job = Job.create("worker.jobs.persist_batch", connection=queue.connection, timeout=-1)
    assert worker.get_heartbeat_ttl(job) == job_context.settings.heartbeat_ttl_seconds
    assert isinstance(worker, MessageWorker)


def test_a_heartbeat_repeated_within_a_second_is_left_out_unless_it_changes_the_lifetime(
    queue, job_context
) -> None:
    worker = build_worker(job_context, queue.connection)
    redis_ = queue.connection
    worker.heartbeat()
    assert redis_.ttl(worker.key) > 60
    redis_.expire(worker.key, 30)
    worker.heartbeat()
    assert redis_.ttl(worker.key) <= 30
    worker.heartbeat(15)
    assert 0 < redis_.ttl(worker.key) <= 15
    worker.beat = (time.monotonic() - HEARTBEAT_SECONDS, 15)
    redis_.expire(worker.key, 5)
    worker.heartbeat(15)
    assert redis_.ttl(worker.key) > 5
    redis_.delete(worker.key)


def test_a_state_the_worker_is_in_already_is_not_written_again(queue, job_context) -> None:
    worker = build_worker(job_context, queue.connection)
    redis_ = queue.connection
    worker.set_state("idle")
    assert redis_.hget(worker.key, "state") == b"idle"
    redis_.hset(worker.key, "state", "written by another")
    worker.set_state("idle")
    assert redis_.hget(worker.key, "state") == b"written by another"
    worker.set_state("busy")
    assert redis_.hget(worker.key, "state") == b"busy"
    redis_.delete(worker.key)


async def test_a_job_stores_the_earlier_messages_of_its_conversations_first(
    queue, drain, database
) -> None:
    """Whatever order jobs run in: here the later message's job runs while the earlier
    one's is still held by another (stalled) worker."""
    first = message("first")
    second = later(first, "second")
    first_job = enqueue(queue, [first])
    enqueue(queue, [second])
    stalled = take_out_of_queue(queue, first_job)
    drain()
    assert stored_in_order(database, [first, second]) == [first["id"], second["id"]]
    # The stalled job finishes later, storing nothing twice.
    assert stalled.perform() == 0
    assert stored_in_order(database, [first, second]) == [first["id"], second["id"]]


async def test_jobs_queued_against_acceptance_order_store_in_acceptance_order(
    queue, drain, database
) -> None:
    """A replica slow to queue its earlier message: its job sits behind the later one's."""
    first = message("accepted first")
    second = later(first, "queued first")
    jobs_run = [enqueue(queue, [second]), enqueue(queue, [first])]
    drain()
    assert stored_in_order(database, [first, second]) == [first["id"], second["id"]]
    assert not set(jobs_run) & set(FailedJobRegistry(queue=queue).get_job_ids())


async def test_messages_of_other_conversations_are_left_to_their_jobs(
    queue, drain, database
) -> None:
    elsewhere = message("elsewhere")
    stalled_job = enqueue(queue, [elsewhere])
    mine = message("mine")
    enqueue(queue, [mine])
    stalled = take_out_of_queue(queue, stalled_job)
    drain()
    assert stored_in_order(database, [elsewhere, mine]) == [mine["id"]]
    assert stalled.perform() == 1


async def test_a_message_whose_pending_entry_is_gone_is_never_stored(
    queue, drain, database
) -> None:
    """As a message deleted while queued: its entry is removed under the cursor lock."""
    kept, deleted = message("kept"), message("deleted")
    enqueue(queue, [kept, deleted])
    queue.connection.hdel(PENDING_KEY, str(deleted["id"]))
    drain()
    assert stored_in_order(database, [kept, deleted]) == [kept["id"]]


async def test_a_job_waits_for_an_unreachable_database_and_keeps_its_place(
    queue, job_context, database, unit_redis_url, tmp_path
) -> None:
    sent = message("patience")
    job_id = enqueue(queue, [sent])
    status_file = tmp_path / "status.json"
    settings = job_context.settings.model_copy(update={"status_file": str(status_file)})
    unreachable = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", pool_pre_ping=True
    )
    context = jobs.JobContext(settings=settings, engine=unreachable)
    connection = redis.Redis.from_url(unit_redis_url)
    worker = build_worker(context, connection)
    beats: list[float] = []
    said: list[str | None] = []
    heartbeat = worker.maintain_heartbeats

    def counting(job: Job) -> None:
        beats.append(time.monotonic())
        heartbeat(job)

    worker.maintain_heartbeats = counting  # type: ignore[method-assign]

    def database_returns() -> None:
        deadline = time.monotonic() + 10
        while len(beats) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        said.append(check.problem(str(status_file)))
        context.engine = job_context.engine

    returns = threading.Thread(target=database_returns)
    returns.start()
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        returns.join()
        connection.close()
        jobs.install(job_context)
    assert len(beats) >= 3
    assert said == ["waiting for the database"]
    assert check.problem(str(status_file)) is None
    assert stored_in_order(database, [sent]) == [sent["id"]]
    assert job_id not in FailedJobRegistry(queue=queue).get_job_ids()


def test_only_a_lost_server_counts_as_unreachable(messages_database_url) -> None:
    gone = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(DBAPIError) as refused:
        gone.connect()
    assert jobs.unreachable(refused.value)
    engine = create_engine(messages_database_url)
    with engine.connect() as connection, pytest.raises(DBAPIError) as bad_data:
        connection.execute(text("SELECT 1/0"))
    engine.dispose()
    assert not jobs.unreachable(bad_data.value)


def leftovers(connection: redis.Redis, job_id: str) -> list[bytes]:
    """What Redis still holds of job ``job_id``: keys naming it, and entries of RQ's
    registries and intermediate lists."""
    found = list(connection.scan_iter(match=f"*{job_id}*"))
    for key in connection.scan_iter(match="rq:*"):
        kind = connection.type(key)
        members = (
            connection.zrange(key, 0, -1)
            if kind == b"zset"
            else connection.lrange(key, 0, -1)
            if kind == b"list"
            else []
        )
        found += [key + b" " + m for m in members if job_id.encode() in m]
    return found


def test_a_finished_job_leaves_no_more_than_rqs_own_worker_leaves(queue, job_context) -> None:
    ours = queue.enqueue_call("builtins.print", args=["ours"], result_ttl=0)
    build_worker(job_context, queue.connection).work(burst=True, logging_level="WARNING")
    theirs = queue.enqueue_call("builtins.print", args=["theirs"], result_ttl=0)
    SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer).work(
        burst=True, logging_level="WARNING"
    )
    assert leftovers(queue.connection, theirs.id) == []
    assert leftovers(queue.connection, ours.id) == []
