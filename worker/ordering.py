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

import time
from collections import defaultdict

from redis import Redis
from rq.job import Job, JobStatus

from message_service.persistence import (
    PENDING_KEY,
    QueuedMessage,
    accepted_score,
    conversation_key,
    parse_pending_entry,
)

IN_FLIGHT = {JobStatus.QUEUED.value.encode(), JobStatus.STARTED.value.encode()}
# Messages this process already waited for until its hold ran out (a dead worker's job):
# later jobs do not wait for them again. Message id -> when it was given up.
_given_up: dict[str, float] = {}
GIVE_UP_FOR = 60.0


def acceptance_order(messages: list[QueuedMessage]) -> list[QueuedMessage]:
    """``messages`` in the order they were accepted."""
    return sorted(messages, key=lambda m: (accepted_score(m), m["id"]))


def held_back(redis: Redis, remaining: list[QueuedMessage]) -> dict[str, tuple[bool, set[int]]]:
    """For each earlier message, queued or running in another job, that messages of
    ``remaining`` must wait for: its id, whether its job is running, and the ids of ours
    that wait."""
    by_conversation: dict[str, list[QueuedMessage]] = defaultdict(list)
    for message in remaining:
        key = conversation_key(message["sender_id"], message["receiver_id"])
        by_conversation[key].append(message)
    ours = {str(message["id"]) for message in remaining}
    with redis.pipeline(transaction=False) as pipe:
        for key, messages in by_conversation.items():
            pipe.zrange(key, 0, max(accepted_score(m) for m in messages), byscore=True)
        queued_before: list[list[bytes]] = pipe.execute()
    now = time.monotonic()
    for member, since in list(_given_up.items()):
        if now - since > GIVE_UP_FOR:
            del _given_up[member]
    held: dict[str, tuple[bool, set[int]]] = {}
    for key, raw_members in zip(by_conversation, queued_before, strict=True):
        members = [raw.decode() for raw in raw_members]
        blocker = next((m for m in members if m not in ours and m not in _given_up), None)
        status = _job_status(redis, key, blocker) if blocker is not None else None
        if blocker is None or status not in IN_FLIGHT:
            continue
        after = members[members.index(blocker) :]
        running = status == JobStatus.STARTED.value.encode()
        held.setdefault(blocker, (running, set()))[1].update(int(m) for m in after if m in ours)
    return held


def give_up_on(blockers: list[str]) -> None:
    """Stop waiting for these messages, in this job and the next ones for a while: their
    job has been running for longer than a hold (its worker probably died)."""
    for blocker in blockers:
        _given_up[blocker] = time.monotonic()


def _job_status(redis: Redis, key: str, member: str) -> bytes | None:
    """The RQ status of the job carrying ``member``; a member whose message is no longer
    queued anywhere (its removal was lost) is dropped from the set."""
    entry = redis.hget(PENDING_KEY, member)
    if entry is None:
        redis.zrem(key, member)
        return None
    status = redis.hget(Job.key_for(parse_pending_entry(entry)["job_id"]), "status")
    return status if isinstance(status, bytes) else None
