"""Each conversation is stored in the order its messages were accepted.

Workers run jobs in parallel, so a later message's job can reach the database before an
earlier one's. message_service notes every queued message in its conversation's sorted
set (scored by acceptance time); before storing a message, a job checks that no earlier
message of that conversation is still queued in another job, and holds it briefly if one
is. The hold is bounded: a dead worker's job or a lost Redis write delays a conversation
by at most ``order_hold_seconds``, never stalls it.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


def acceptance_order(messages: list[QueuedMessage]) -> list[QueuedMessage]:
    """``messages`` in the order they were accepted."""
    return sorted(messages, key=lambda m: (accepted_score(m), m["id"]))


def split_ready(
    redis: Redis, remaining: list[QueuedMessage]
) -> tuple[list[QueuedMessage], dict[str, str]]:
    """The messages no earlier queued message of their conversation waits before, and for
    each held conversation the id of the first message it waits for."""
    by_conversation: dict[str, list[QueuedMessage]] = defaultdict(list)
    for message in remaining:
        by_conversation[conversation_key(message["sender_id"], message["receiver_id"])].append(
            message
        )
    ours = {str(message["id"]) for message in remaining}
    with redis.pipeline(transaction=False) as pipe:
        for key, messages in by_conversation.items():
            pipe.zrange(key, 0, max(accepted_score(m) for m in messages), byscore=True)
        queued_before: list[list[bytes]] = pipe.execute()
    held: set[str] = set()
    blockers: dict[str, str] = {}
    for key, members in zip(by_conversation, queued_before, strict=True):
        for raw in members:
            member = raw.decode()
            if key in blockers and member in ours:
                held.add(member)
            elif member not in ours and key not in blockers:
                blockers[key] = member
    return [m for m in remaining if str(m["id"]) not in held], blockers


def release_stale(redis: Redis, blockers: dict[str, str], stored: set[int]) -> None:
    """Forget blockers that will never be stored by a running job: already stored (their
    removal was lost), gone from Redis, or in a job that failed for good."""
    for key, member in blockers.items():
        entry = redis.hget(PENDING_KEY, member)
        stale = int(member) in stored or entry is None
        if entry is not None and not stale:
            job_status = redis.hget(Job.key_for(parse_pending_entry(entry)["job_id"]), "status")
            stale = job_status in (None, JobStatus.FAILED.value.encode())
        if stale:
            log.info("message %s no longer holds conversation %s", member, key)
            redis.zrem(key, member)
