"""Idempotency-Key: a repeated send returns its first answer and creates nothing.

While the first send's message is queued, its record in Redis answers (the queueing
script reads it). Once the message is stored, the message row answers: it keeps the key's
hash, unique per sender, so Redis holds a record only for messages in flight (plus a
short margin, see IDEMPOTENCY_MARGIN_SECONDS).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence

from sqlalchemy import BigInteger, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.errors import Conflict, FieldError, InvalidInput
from common.schemas import IDEMPOTENCY_KEY_MAX
from message_service.enqueue import KEY_REUSED, Accepted, Outcome, Submission

log = logging.getLogger(__name__)
# After a failed look-up, sends skip it for this long rather than each wait for Postgres.
RETRY_AFTER_FAILURE_SECONDS = 1.0

_STORED = text(
    """
    SELECT k.index, m.id, m.receiver_id, m.content, m.created_at
    FROM unnest(:senders, :keys) WITH ORDINALITY AS k(sender_id, key, index)
    JOIN messages AS m
      ON m.sender_id = k.sender_id AND m.idempotency_key = decode(k.key, 'hex')
    """
).bindparams(bindparam("senders", type_=ARRAY(BigInteger)), bindparam("keys", type_=ARRAY(Text)))


def key_hash(key: str) -> str:
    """The hash a key is kept under; 422 for a key outside the documented form."""
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        problem = f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        raise InvalidInput(
            f"Idempotency-Key: {problem}",
            errors=[FieldError(field="Idempotency-Key", message=problem)],
        )
    return hashlib.sha256(key.encode()).hexdigest()


def fingerprint(receiver_id: int, content: str) -> str:
    """What a key stands for: a repeat must send the same content to the same receiver."""
    return hashlib.sha256(f"{receiver_id}:{content}".encode()).hexdigest()[:32]


class StoredSends:
    """Answers the sends whose key belongs to a stored message, from the message rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._failed_at = -RETRY_AFTER_FAILURE_SECONDS

    async def __call__(self, batch: Sequence[Submission]) -> Mapping[int, Outcome]:
        """By index in ``batch``: the first answer (or a conflict) of each keyed send
        whose message is stored. Postgres unreachable: no answers (the queue's records
        still answer every send whose message is in flight)."""
        keyed = [(i, send) for i, send in enumerate(batch) if send.fingerprint is not None]
        if not keyed or time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_SECONDS:
            return {}
        parameters = {
            "senders": [send.message["sender_id"] for _, send in keyed],
            "keys": [send.message["idempotency_key"] for _, send in keyed],
        }
        try:
            async with self.engine.connect() as connection:
                rows = (await connection.execute(_STORED, parameters)).all()
        except SQLAlchemyError as exc:
            self._failed_at = time.monotonic()
            log.warning("stored Idempotency-Keys not checked, the database is unavailable: %s", exc)
            return {}
        answers: dict[int, Outcome] = {}
        for row in rows:
            index, send = keyed[int(row[0]) - 1]
            if fingerprint(row.receiver_id, row.content) == send.fingerprint:
                answers[index] = Accepted(row.id, row.created_at, replayed=True)
            else:
                answers[index] = Conflict(KEY_REUSED)
        return answers
