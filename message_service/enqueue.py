"""Handing accepted messages to RQ: one script writes everything a send leaves in Redis,
and concurrent sends share each run of it (group commit).

Every send waits until Redis holds its message. Sends that arrive while a write is under
way go together in the next one. The script, atomically: answers a repeated
Idempotency-Key with the first answer (or a conflict); counts each new send against its
sender's rate; appends the admitted ones to the job waiting at the tail of the queue if
it has room, else creates a job of their own; and writes each message's pending entry,
its place in its conversation and its idempotency record. Nothing of a send is ever half
written, so a crash at any point leaves no key that refuses its own retry.

So a lone send goes out at once as a job of its own, and when the workers fall behind,
the waiting job grows (up to ``max_batch`` messages): the work per job grows with the
load. A job carries its messages' ids in a Redis list beside it (``batch_key``), so that
a later batch can join it while it waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError

from common.errors import Conflict, ServiceUnavailable
from common.metrics import dependency_error
from common.ratelimit import GCRA_LUA, Rate, too_many
from message_service.metrics import MESSAGES_QUEUED
from message_service.persistence.queued import (
    PENDING_KEY,
    QUEUE_NAME,
    PendingMessage,
    accepted_score,
    batch_key,
    blocks_key,
    conversation_key,
    idempotency_record_key,
    send_rate_key,
)
from message_service.persistence.rq_layout import (
    QUEUES_SET,
    job_key,
    messages_queue,
    persist_job_fields,
)

log = logging.getLogger(__name__)

# KEYS: [1] the queue list, [2] the pending hash, [3] RQ's set of queues, [4] the hash of a
# new job, [5] its batch list; per send i: [3 + 3i] its conversation set, [4 + 3i] its
# sender's rate key, [5 + 3i] the set of those its sender blocks; then [5 + 3n + r]
# idempotency record r.
# ARGV: [1] max batch, [2] the batch key prefix, [3] the new job's id, [4] the lifetime of
# batch lists and records (s), [5] the rate's interval and [6] burst (ms), [7] the send
# count n, [8] m, the length of the new job's field list, which follows; then per send
# (id, message JSON, score, its record number r or 0, its receiver); then each record's
# value.
# Returns the job that carries the admitted sends ("" if none), then per send: 0 queued,
# ms its sender must wait, "R" .. the first send's record, "C" (its key was used for
# another message) or "B" (its sender blocks its receiver).
_ENQUEUE = (
    GCRA_LUA
    + """
local n, m = tonumber(ARGV[7]), tonumber(ARGV[8])
local sends, records = 8 + m, 8 + m + 5 * n
local function fingerprint(record) return string.sub(record, 1, string.find(record, ' ')) end
local now = now_ms()
local answer, admitted = {''}, {}
for i = 1, n do
  local a = sends + 5 * (i - 1)
  local r = tonumber(ARGV[a + 4])
  local result
  if r > 0 then
    local first = redis.call('GET', KEYS[5 + 3 * n + r])
    if first then
      result = fingerprint(first) == fingerprint(ARGV[records + r]) and 'R' .. first or 'C'
    end
  end
  if not result and redis.call('SISMEMBER', KEYS[5 + 3 * i], ARGV[a + 5]) == 1 then
    result = 'B'
  end
  if not result then
    result = gcra(KEYS[4 + 3 * i], tonumber(ARGV[5]), tonumber(ARGV[6]), now)
    if result == 0 then
      admitted[#admitted + 1] = i
      if r > 0 then redis.call('SET', KEYS[5 + 3 * n + r], ARGV[records + r], 'EX', ARGV[4]) end
    end
  end
  answer[i + 1] = result
end
if #admitted == 0 then return answer end
local job
local tail = redis.call('LINDEX', KEYS[1], -1)
if tail then
  local held = redis.call('LLEN', ARGV[2] .. tail)
  if held > 0 and held + #admitted <= tonumber(ARGV[1]) then job = tail end
end
local batch
if job then
  batch = ARGV[2] .. job
else
  job, batch = ARGV[3], KEYS[5]
  redis.call('HSET', KEYS[4], unpack(ARGV, 9, 8 + m))
  redis.call('RPUSH', KEYS[1], job)
  redis.call('SADD', KEYS[3], KEYS[1])
end
local ids, pending = {}, {}
for _, i in ipairs(admitted) do
  local a = sends + 5 * (i - 1)
  ids[#ids + 1] = ARGV[a + 1]
  pending[#pending + 1] = ARGV[a + 1]
  pending[#pending + 1] = job .. ' ' .. ARGV[a + 2]
  redis.call('ZADD', KEYS[3 + 3 * i], ARGV[a + 3], ARGV[a + 1])
end
redis.call('RPUSH', batch, unpack(ids))
redis.call('EXPIRE', batch, ARGV[4])
redis.call('HSET', KEYS[2], unpack(pending))
answer[1] = job
return answer
"""
)
_BATCH_PREFIX = batch_key("")
UNAVAILABLE = "the message queue is unavailable, try again shortly"
KEY_REUSED = "this Idempotency-Key was already used for a different message"
BLOCKED = "you block this user: unblock them first"


@dataclass(frozen=True)
class Accepted:
    """A send's answer: its message's id and acceptance time, and whether it repeats an
    earlier send with the same Idempotency-Key."""

    id: int
    created_at: datetime
    replayed: bool = False

    def record(self, fingerprint: str) -> str:
        """The idempotency record of the send that got this answer."""
        return f"{fingerprint} {self.id} {self.created_at.isoformat()}"

    @classmethod
    def from_record(cls, record: str) -> Accepted:
        _, message_id, created_at = record.split(" ")
        return cls(int(message_id), datetime.fromisoformat(created_at), replayed=True)


@dataclass
class Submission:
    """A send handed to the batcher, on its way into Redis."""

    message: PendingMessage
    # With an Idempotency-Key: what the key stands for (receiver and content).
    fingerprint: str | None = None
    done: asyncio.Future[Accepted] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def accepted(self) -> Accepted:
        """The answer if this send is queued."""
        return Accepted(self.message["id"], datetime.fromisoformat(self.message["created_at"]))


@dataclass(frozen=True)
class JobOptions:
    retry_intervals: list[int]
    # How long a failed job, its batch list and its idempotency records are kept.
    failure_ttl: int


# Per send, the answer of the script: Accepted, or the exception the send gets.
Outcome = Accepted | Exception


class MessageQueue:
    """The RQ queue of messages to store, written by the one script."""

    def __init__(
        self, redis: Redis, options: JobOptions, *, max_batch: int, send_rate: Rate
    ) -> None:
        self.queue = messages_queue(redis, QUEUE_NAME)
        self.options = options
        self.max_batch = max_batch
        self.send_rate = send_rate
        self._script = redis.register_script(_ENQUEUE)

    def enqueue(self, sends: Sequence[Submission]) -> tuple[str | None, list[Outcome]]:
        """Write the sends to Redis in one atomic step; returns the job that carries the
        admitted ones (None if none was) and each send's outcome."""
        job_id = f"persist-{sends[0].message['id']}"
        fields = persist_job_fields(
            self.queue,
            job_id=job_id,
            kwargs={"batch": batch_key(job_id)},
            retry_intervals=self.options.retry_intervals,
            failure_ttl=self.options.failure_ttl,
        )
        # Outlive a failed job's record, which an operator may requeue until then.
        lifetime = self.options.failure_ttl + 86400
        rate = self.send_rate
        keys = [self.queue.key, PENDING_KEY, QUEUES_SET, job_key(job_id), batch_key(job_id)]
        args: list[str | bytes | int | float] = [
            self.max_batch,
            _BATCH_PREFIX,
            job_id,
            lifetime,
            rate.interval_ms,
            rate.burst_ms,
            len(sends),
            len(fields),
            *fields,
        ]
        records: list[str | bytes | int | float] = []
        record_keys: list[str] = []
        numbers = itertools.count(1)
        for send in sends:
            message = send.message
            keys += [
                conversation_key(message["sender_id"], message["receiver_id"]),
                send_rate_key(message["sender_id"]),
                blocks_key(message["sender_id"]),
            ]
            number = 0
            if send.fingerprint is not None:
                number = next(numbers)
                records.append(send.accepted.record(send.fingerprint))
                record_keys.append(
                    idempotency_record_key(message["sender_id"], message["idempotency_key"])
                )
            args += [
                message["id"],
                json.dumps(message, ensure_ascii=False),
                accepted_score(message),
                number,
                message["receiver_id"],
            ]
        job, *results = self._script(keys=keys + record_keys, args=args + records)
        outcomes = [_outcome(send, result) for send, result in zip(sends, results, strict=True)]
        return (job.decode() or None), outcomes


def _outcome(send: Submission, result: int | bytes) -> Outcome:
    if isinstance(result, bytes):
        if result == b"C":
            return Conflict(KEY_REUSED)
        if result == b"B":
            return Conflict(BLOCKED)
        return Accepted.from_record(result[1:].decode())
    if result:
        return too_many("messages", int(result))
    return send.accepted


# Answers sends whose Idempotency-Key already belongs to a stored message, by their
# index in the batch (see message_service.idempotency).
StoredAnswers = Callable[[Sequence[Submission]], Awaitable[Mapping[int, Outcome]]]


class Batcher:
    """Group commit: gathers concurrent sends into one run of the script at a time."""

    def __init__(self, queue: MessageQueue, *, stored_answers: StoredAnswers) -> None:
        self.queue = queue
        self.stored_answers = stored_answers
        self._waiting: list[Submission] = []
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

    async def submit(self, send: Submission) -> Accepted:
        """The send's answer once Redis holds its message (or its key's first answer);
        TooManyRequests if its sender is over the send rate, Conflict if its key was used
        for another message, ServiceUnavailable if Redis cannot take it."""
        self._waiting.append(send)
        self._wake.set()
        return await send.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self.queue.max_batch]
                del self._waiting[: self.queue.max_batch]
                await self._flush(batch)

    async def _flush(self, batch: list[Submission]) -> None:
        answered = await self.stored_answers(batch)
        for index, outcome in answered.items():
            _settle(batch[index], outcome)
        rest = [send for index, send in enumerate(batch) if index not in answered]
        if not rest:
            return
        try:
            _, outcomes = await asyncio.to_thread(self.queue.enqueue, rest)
        except RedisError as exc:
            dependency_error("redis")
            log.warning("could not enqueue %d messages: %s", len(rest), exc)
            for send in rest:
                error = ServiceUnavailable(UNAVAILABLE)
                error.__cause__ = exc
                _settle(send, error)
            return
        queued = sum(isinstance(o, Accepted) and not o.replayed for o in outcomes)
        MESSAGES_QUEUED.inc(queued)
        for send, outcome in zip(rest, outcomes, strict=True):
            _settle(send, outcome)


def _settle(send: Submission, outcome: Outcome) -> None:
    if send.done.done():
        return
    if isinstance(outcome, Exception):
        send.done.set_exception(outcome)
    else:
        send.done.set_result(outcome)
