"""Handing accepted messages to RQ, with group commit.

Every send waits until Redis holds its message. Sends that arrive while a Redis
transaction is under way are gathered into the next one, which carries them all as one
job: a lone send goes out at once, a busy replica writes one transaction and one job per
batch instead of one per message. RQ's client is synchronous, so each transaction runs in
a worker thread and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from common.errors import ServiceUnavailable
from message_service.persistence import (
    PENDING_KEY,
    PERSIST_JOB,
    QUEUE_NAME,
    QueuedMessage,
    accepted_score,
    conversation_key,
    pending_entry,
)

log = logging.getLogger(__name__)


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
class JobOptions:
    timeout: int
    retry_intervals: list[int]
    failure_ttl: int


def make_queue(redis: Redis) -> Queue:
    """The RQ queue of messages to persist (JSON arguments only)."""
    return Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)


def enqueue_batch(queue: Queue, sends: Sequence[Send], options: JobOptions) -> str:
    """In one Redis transaction: the pending entries, the idempotency records and one job
    that persists every message of the batch. Returns the job id."""
    messages = [send.message for send in sends]
    job_id = f"persist-{messages[0]['id']}"
    with queue.connection.pipeline(transaction=True) as pipe:
        pipe.hset(PENDING_KEY, mapping={str(m["id"]): pending_entry(m, job_id) for m in messages})
        for m in messages:
            key = conversation_key(m["sender_id"], m["receiver_id"])
            pipe.zadd(key, {str(m["id"]): accepted_score(m)})
        for send in sends:
            if send.idempotency is not None:
                key, value, ttl = send.idempotency
                pipe.set(key, value, ex=ttl)
        job = Queue.prepare_data(
            PERSIST_JOB,
            kwargs={"messages": messages},
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
            # The default description would carry the messages' text into the logs.
            description=f"persist {len(messages)} messages",
        )
        queue.enqueue_many([job], pipeline=pipe)
        pipe.execute()
    return job_id


class Batcher:
    """Group commit: gathers concurrent sends into one Redis transaction at a time."""

    def __init__(self, *, queue: Queue, options: JobOptions, max_batch: int) -> None:
        self.queue = queue
        self.options = options
        self.max_batch = max_batch
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
        """Return once Redis holds ``send``'s message; ServiceUnavailable if it cannot."""
        self._waiting.append(send)
        self._wake.set()
        await send.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._flush(batch)

    async def _flush(self, batch: list[Send]) -> None:
        try:
            await asyncio.to_thread(enqueue_batch, self.queue, batch, self.options)
        except Exception as exc:
            log.warning("could not enqueue %d messages", len(batch), exc_info=True)
            error = ServiceUnavailable("the message queue is unavailable, try again shortly")
            error.__cause__ = exc
            for send in batch:
                if not send.done.done():
                    send.done.set_exception(error)
            return
        for send in batch:
            if not send.done.done():
                send.done.set_result(None)
