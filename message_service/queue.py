"""Handing accepted messages to RQ, with group commit and job merging.

Every send waits until Redis holds its message. Sends that arrive while a Redis write is
under way are gathered into the next one. A batch joins the job at the tail of the queue
when that job is still waiting for a worker and has room; otherwise it becomes a new job.
So a lone send goes out at once as a job of its own, and when the workers fall behind,
the waiting job grows (up to ``max_batch`` messages): the work per job, and per Redis
write, grows with the load. Measured here with 2 workers draining a pre-filled queue:
jobs of 14 messages ran 1,570 messages/s, jobs of 500 ran 11,400.

A job carries its messages in a Redis list beside it (``batch_key``), not in its
arguments, so that a later batch can be appended while the job waits.

Each send is also counted against its sender's rate here, by the same script: one
rate-limit round trip per batch instead of one per send at the gateway (which took 8% of
the gateway's CPU, and a Redis fsync on the way to every 202).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from common.errors import ServiceUnavailable
from common.ratelimit import GCRA_LUA, KEY_PREFIX, Rate, too_many
from message_service.persistence import (
    PENDING_KEY,
    PERSIST_JOB,
    QUEUE_NAME,
    QueuedMessage,
    accepted_score,
    batch_key,
    conversation_key,
    pending_entry,
)

log = logging.getLogger(__name__)

# Counts each send against its sender's rate, then appends the admitted ones to the job at
# the tail of the queue, if that is a persist job (its batch list exists) with room for
# them. A job leaves the queue list atomically when a worker takes it, so nothing is
# appended to a batch once its job has started. The batch key is derived from the tail
# (not declared in KEYS): the queue lives on one Redis, never a cluster.
# KEYS: the queue list, the pending hash; per send, its conversation set and its sender's
# rate key; then each idempotency record. ARGV: max_batch, the batch key prefix, the send
# count n, the rate's interval and burst (ms); per send (id, message JSON, score, its
# record's number or 0); then (value, ttl) per record.
# Returns the tail job's id if the admitted sends joined it (else ""), then per send the
# ms its sender must wait (0: admitted).
_ADMIT_AND_APPEND = (
    GCRA_LUA
    + """
local n = tonumber(ARGV[3])
local now = now_ms()
local answer = {''}
local admitted = 0
for i = 1, n do
  answer[i + 1] = gcra(KEYS[2 + 2 * i], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
  if answer[i + 1] == 0 then admitted = admitted + 1 end
end
local tail = redis.call('LINDEX', KEYS[1], -1)
if not tail or admitted == 0 then return answer end
local batch = ARGV[2] .. tail
local held = redis.call('LLEN', batch)
if held == 0 or held + admitted > tonumber(ARGV[1]) then return answer end
for i = 1, n do
  if answer[i + 1] == 0 then
    local a = 2 + 4 * i
    local id, message, record = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 3])
    redis.call('RPUSH', batch, message)
    redis.call('HSET', KEYS[2], id, tail .. ' ' .. message)
    redis.call('ZADD', KEYS[1 + 2 * i], ARGV[a + 2], id)
    if record > 0 then
      local v = 4 + 4 * n + 2 * record
      redis.call('SET', KEYS[2 + 2 * n + record], ARGV[v], 'EX', ARGV[v + 1])
    end
  end
end
answer[1] = tail
return answer
"""
)
BATCH_PREFIX = batch_key("")


@dataclass
class Send:
    """One accepted message, and what else its transaction must write."""

    message: QueuedMessage
    # (key, value, ttl): the idempotency record to write with the message.
    idempotency: tuple[str, str, int] | None = None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class _Queued:
    """A send as the queue writes it: its JSON, conversation set and score."""

    send: Send
    encoded: str
    conversation: str
    score: float


@dataclass(frozen=True)
class JobOptions:
    timeout: int
    retry_intervals: list[int]
    failure_ttl: int


@dataclass(frozen=True)
class Put:
    """What became of a batch of sends."""

    # The job that carries the admitted sends; None when every send was refused.
    job_id: str | None
    # Per send: 0 if it was queued, else the ms until its sender may send again.
    waits: list[int]


class MessageQueue:
    """The RQ queue of messages to persist (JSON arguments only), which also counts each
    send against its sender's rate."""

    def __init__(
        self, redis: Redis, options: JobOptions, *, max_batch: int, send_rate: Rate
    ) -> None:
        self.queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
        self.options = options
        self.max_batch = max_batch
        self.send_rate = send_rate
        self._admit_and_append = redis.register_script(_ADMIT_AND_APPEND)

    def put(self, sends: Sequence[Send]) -> Put:
        """Write the sends within their senders' rates to Redis, in one atomic step with
        the rate counts when they join the waiting job, else in a second one."""
        batch = [
            _Queued(
                send,
                json.dumps(send.message),
                conversation_key(send.message["sender_id"], send.message["receiver_id"]),
                accepted_score(send.message),
            )
            for send in sends
        ]
        tail, waits = self._admit_and_append_to_tail(batch)
        admitted = [q for q, wait in zip(batch, waits, strict=True) if not wait]
        if tail is None and admitted:
            tail = self._new_job(admitted)
        return Put(tail, waits)

    def _admit_and_append_to_tail(self, batch: list[_Queued]) -> tuple[str | None, list[int]]:
        records = [q.send.idempotency for q in batch if q.send.idempotency is not None]
        keys = [self.queue.key, PENDING_KEY]
        rate = self.send_rate
        args: list[str | int | float] = [
            self.max_batch,
            BATCH_PREFIX,
            len(batch),
            rate.interval_ms,
            rate.burst_ms,
        ]
        numbers = itertools.count(1)
        for q in batch:
            keys += [q.conversation, f"{KEY_PREFIX}send:{q.send.message['sender_id']}"]
            number = next(numbers) if q.send.idempotency is not None else 0
            args += [q.send.message["id"], q.encoded, q.score, number]
        keys += [key for key, _, _ in records]
        for _, value, ttl in records:
            args += [value, ttl]
        tail, *waits = self._admit_and_append(keys=keys, args=args)
        return (tail.decode() or None), [int(wait) for wait in waits]

    def _new_job(self, batch: list[_Queued]) -> str:
        """In one Redis transaction: the batch, the pending entries, the idempotency
        records and a job that persists the batch."""
        job_id = f"persist-{batch[0].send.message['id']}"
        key = batch_key(job_id)
        options = self.options
        with self.queue.connection.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *(q.encoded for q in batch))
            # Outlives a failed job's record, which an operator may requeue until then.
            pipe.expire(key, options.failure_ttl + 86400)
            pipe.hset(
                PENDING_KEY,
                mapping={
                    str(q.send.message["id"]): pending_entry(q.encoded, job_id) for q in batch
                },
            )
            for q in batch:
                pipe.zadd(q.conversation, {str(q.send.message["id"]): q.score})
                if q.send.idempotency is not None:
                    record, value, ttl = q.send.idempotency
                    pipe.set(record, value, ex=ttl)
            job = Queue.prepare_data(
                PERSIST_JOB,
                kwargs={"batch": key},
                job_id=job_id,
                timeout=options.timeout,
                # A retried job goes to the front: its messages were accepted before those
                # queued since, and jobs behind it may be holding messages for it.
                retry=(
                    Retry(
                        max=len(options.retry_intervals),
                        interval=options.retry_intervals,
                        enqueue_at_front=True,
                    )
                    if options.retry_intervals
                    else None
                ),
                result_ttl=0,
                failure_ttl=options.failure_ttl,
                description="persist a batch of messages",
            )
            self.queue.enqueue_many([job], pipeline=pipe)
            pipe.execute()
        return job_id


class Batcher:
    """Group commit: gathers concurrent sends into one Redis transaction at a time."""

    def __init__(self, queue: MessageQueue) -> None:
        self.queue = queue
        self._waiting: list[Send] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the flushing task."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Flush what is waiting, then stop."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._waiting:
            await self._flush(self._waiting)

    async def submit(self, send: Send) -> None:
        """Return once Redis holds ``send``'s message; TooManyRequests if its sender is
        over the send rate, ServiceUnavailable if Redis cannot take it."""
        self._waiting.append(send)
        self._wake.set()
        await send.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self.queue.max_batch]
                del self._waiting[: self.queue.max_batch]
                await self._flush(batch)

    async def _flush(self, batch: list[Send]) -> None:
        try:
            put = await asyncio.to_thread(self.queue.put, batch)
        except Exception as exc:
            log.warning("could not enqueue %d messages", len(batch), exc_info=True)
            error = ServiceUnavailable("the message queue is unavailable, try again shortly")
            error.__cause__ = exc
            for send in batch:
                if not send.done.done():
                    send.done.set_exception(error)
            return
        for send, wait in zip(batch, put.waits, strict=True):
            if send.done.done():
                continue
            if wait:
                send.done.set_exception(too_many("messages", wait))
            else:
                send.done.set_result(None)
