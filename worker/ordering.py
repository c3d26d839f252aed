"""Each conversation is stored in the order its messages were accepted.

Workers run jobs in parallel, so a later message's job can reach the database before an
earlier one's. message_service notes every queued message in its conversation's sorted
set (scored by acceptance time); before storing a message, a job looks for an earlier
message of that conversation still queued in another job, and holds its message while
that job is queued or running. The hold is bounded by ``order_hold_seconds``, and there
is none behind a job waiting for a retry or failed for good: after a fault, order may
give way, the message is never lost or delayed for long.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis import Redis
from rq.job import Job, JobStatus

from message_service.persistence import (
    PENDING_KEY,
    QueuedMessage,
    accepted_score,
    conversation_key,
    parse_pending_entry,
)

STARTED = JobStatus.STARTED.value.encode()
IN_FLIGHT = {JobStatus.QUEUED.value.encode(), STARTED}
# Messages this process already waited for until its hold ran out (a dead worker's job):
# later jobs do not wait for them again. Message id -> when it was given up.
_given_up: dict[str, float] = {}
GIVE_UP_FOR = 60.0


@dataclass(frozen=True)
class Queued:
    """A message of a job's batch: its JSON as queued, and its place worked out once."""

    raw: str
    message: QueuedMessage
    conversation: str
    score: float

    @classmethod
    def parse(cls, raw: bytes | str) -> Queued:
        text = raw.decode() if isinstance(raw, bytes) else raw
        message: QueuedMessage = json.loads(text)
        conversation = conversation_key(message["sender_id"], message["receiver_id"])
        return cls(text, message, conversation, accepted_score(message))

    @property
    def id(self) -> int:
        return self.message["id"]


@dataclass(frozen=True)
class Blocker:
    """An earlier message, queued or running in another job, that some of ours wait for."""

    member: str
    job_id: str
    running: bool
    waiting: set[int]


def acceptance_order(messages: Iterable[Queued]) -> list[Queued]:
    """``messages`` in the order they were accepted."""
    return sorted(messages, key=lambda m: (m.score, m.id))


def held_back(redis: Redis, remaining: Sequence[Queued]) -> dict[str, Blocker]:
    """The earlier messages, queued or running in other jobs, that messages of
    ``remaining`` must wait for, by message id. Three pipelined round trips, whatever
    the number of conversations."""
    by_conversation: dict[str, list[Queued]] = defaultdict(list)
    for message in remaining:
        by_conversation[message.conversation].append(message)
    ours = {str(message.id) for message in remaining}
    with redis.pipeline(transaction=False) as pipe:
        for key, messages in by_conversation.items():
            pipe.zrange(key, 0, max(m.score for m in messages), byscore=True)
        queued_before: list[list[bytes]] = pipe.execute()
    _forget_given_up()
    # Per conversation: the first earlier message of another job, and ours after it.
    candidates: dict[str, tuple[str, list[int]]] = {}
    for key, raw_members in zip(by_conversation, queued_before, strict=True):
        members = [raw.decode() for raw in raw_members]
        first = next(
            (i for i, m in enumerate(members) if m not in ours and m not in _given_up), None
        )
        if first is not None:
            waiting = [int(m) for m in members[first:] if m in ours]
            candidates[key] = (members[first], waiting)
    if not candidates:
        return {}
    entries = redis.hmget(PENDING_KEY, [member for member, _ in candidates.values()])
    jobs: dict[str, str] = {}
    with redis.pipeline(transaction=False) as pipe:
        for (key, (member, _)), entry in zip(candidates.items(), entries, strict=True):
            if entry is None:
                # Its removal was lost: the message is no longer queued anywhere.
                pipe.zrem(key, member)
            else:
                jobs[member] = parse_pending_entry(entry)["job_id"]
        pipe.execute()
    statuses = _statuses(redis, set(jobs.values()))
    # A message sits in one conversation, so each blocker comes from one candidate.
    return {
        member: Blocker(member, jobs[member], statuses[jobs[member]] == STARTED, set(waiting))
        for member, waiting in candidates.values()
        if member in jobs and statuses[jobs[member]] in IN_FLIGHT
    }


def unchanged(redis: Redis, blockers: dict[str, Blocker]) -> bool:
    """True while every blocker is still queued and each of their jobs is as it was
    (queued, or running): cheaper than looking again with ``held_back``."""
    if None in redis.hmget(PENDING_KEY, list(blockers)):
        return False
    statuses = _statuses(redis, {blocker.job_id for blocker in blockers.values()})
    return all(
        statuses[b.job_id] in IN_FLIGHT and (statuses[b.job_id] == STARTED) == b.running
        for b in blockers.values()
    )


def give_up_on(blockers: Iterable[str]) -> None:
    """Stop waiting for these messages, in this job and the next ones for a while: their
    job has been running for longer than a hold (its worker probably died)."""
    for blocker in blockers:
        _given_up[blocker] = time.monotonic()


def _forget_given_up() -> None:
    now = time.monotonic()
    for member, since in list(_given_up.items()):
        if now - since > GIVE_UP_FOR:
            del _given_up[member]


def _statuses(redis: Redis, job_ids: set[str]) -> dict[str, bytes | None]:
    """The RQ status of each job (None for a job that is gone)."""
    ordered = list(job_ids)
    with redis.pipeline(transaction=False) as pipe:
        for job_id in ordered:
            pipe.hget(Job.key_for(job_id), "status")
        return dict(zip(ordered, pipe.execute(), strict=True))
