"""keep each send's Idempotency-Key hash on its message

Revision ID: bf4f06775f7b
Revises: 741915606ca8
Create Date: 2026-12-01 20:40:00.000000+00:00

Once a message is stored, its row answers a repeat of its key, so Redis keeps a key's
record only while the message is in flight. Messages stored before this migration have
no key hash: a repeat of their key (within the 24 h Redis records lived) is answered by
its record until that expires.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bf4f06775f7b"
down_revision: str | None = "741915606ca8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("idempotency_key", sa.LargeBinary(), nullable=True))
    op.create_index(
        "uq_messages_sender_id_idempotency_key",
        "messages",
        ["sender_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_messages_sender_id_idempotency_key", table_name="messages")
    op.drop_column("messages", "idempotency_key")
