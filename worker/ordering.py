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


def acceptance_order(messages: list[QueuedMessage]) -> list[QueuedMessage]:
    """``messages`` in the order they were accepted."""
    return sorted(messages, key=lambda m: (accepted_score(m), m["id"]))


def held_back(redis: Redis, remaining: list[QueuedMessage]) -> set[int]:
    """The ids of ``remaining`` that must wait for an earlier message of their
    conversation, queued or running in another job."""
    by_conversation: dict[str, list[QueuedMessage]] = defaultdict(list)
    for message in remaining:
        key = conversation_key(message["sender_id"], message["receiver_id"])
        by_conversation[key].append(message)
    ours = {str(message["id"]) for message in remaining}
    with redis.pipeline(transaction=False) as pipe:
        for key, messages in by_conversation.items():
            pipe.zrange(key, 0, max(accepted_score(m) for m in messages), byscore=True)
        queued_before: list[list[bytes]] = pipe.execute()
    held: dict[str, set[int]] = {}
    for key, members in zip(by_conversation, queued_before, strict=True):
        blocker = next((m.decode() for m in members if m.decode() not in ours), None)
        if blocker is None:
            continue
        after = members[[m.decode() for m in members].index(blocker) :]
        held[f"{key}|{blocker}"] = {int(m) for m in after if m.decode() in ours}
    if not held:
        return set()
    return set().union(
        *(ids for marker, ids in held.items() if _in_flight(redis, *marker.split("|")))
    )


def _in_flight(redis: Redis, key: str, member: str) -> bool:
    """Whether the job carrying ``member`` is queued or running; a member whose message
    is no longer queued anywhere (its removal was lost) is dropped from the set."""
    entry = redis.hget(PENDING_KEY, member)
    if entry is None:
        redis.zrem(key, member)
        return False
    status = redis.hget(Job.key_for(parse_pending_entry(entry)["job_id"]), "status")
    return status in IN_FLIGHT
