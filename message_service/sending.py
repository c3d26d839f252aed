"""Accepting a send: checked, given its final id and queued; never stored here."""

from __future__ import annotations

from datetime import UTC, datetime

from common.errors import FieldError, Forbidden, InvalidInput, NotFound
from common.schemas import SendMessage
from message_service import idempotency
from message_service.enqueue import Accepted, Submission
from message_service.persistence.queued import PendingMessage
from message_service.state import MessageService


async def accept(
    *, service: MessageService, caller: int, data: SendMessage, idempotency_key: str | None
) -> Accepted:
    """Queue a message from ``caller``; its answer (the first one, for a repeated key)."""
    if data.sender_id is not None and data.sender_id != caller:
        raise Forbidden("you can send messages only as yourself")
    limit = service.settings.max_content_length
    if len(data.content) > limit:
        problem = f"must be at most {limit} characters long"
        raise InvalidInput(
            f"content: {problem}", errors=[FieldError(field="content", message=problem)]
        )
    key_hash = idempotency.key_hash(idempotency_key) if idempotency_key is not None else None
    if not await service.users.exists(data.receiver_id):
        raise NotFound("no such receiver")
    message_id = await service.ids.next_id()
    # Stamped with no await before the batcher takes it: acceptance times then follow
    # the order in which this replica queues its messages (workers order by them).
    message = PendingMessage(
        id=message_id,
        content=data.content,
        sender_id=caller,
        receiver_id=data.receiver_id,
        created_at=datetime.now(UTC).isoformat(),
    )
    send = Submission(message)
    if key_hash is not None:
        message["idempotency_key"] = key_hash
        send.fingerprint = idempotency.fingerprint(data.receiver_id, data.content)
    return await service.batcher.submit(send)
