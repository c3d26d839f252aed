"""create messages

Revision ID: 741915606ca8
Revises:
Create Date: 2026-11-29 23:14:48.987360+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "741915606ca8"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    id_blocks = op.create_table(
        "id_blocks",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_id_blocks")),
    )
    op.bulk_insert(id_blocks, [{"name": "messages", "next_id": 1}])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sender_id", sa.BigInteger(), nullable=False),
        sa.Column("receiver_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "persisted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("seq", name=op.f("uq_messages_seq")),
    )
    # Reads page by seq: one user's sent and received messages, and one conversation.
    op.create_index("ix_messages_sender_seq", "messages", ["sender_id", "seq"])
    op.create_index("ix_messages_receiver_seq", "messages", ["receiver_id", "seq"])
    op.create_index(
        "ix_messages_conversation_seq",
        "messages",
        [
            sa.literal_column("least(sender_id, receiver_id)"),
            sa.literal_column("greatest(sender_id, receiver_id)"),
            "seq",
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_conversation_seq", table_name="messages")
    op.drop_index("ix_messages_receiver_seq", table_name="messages")
    op.drop_index("ix_messages_sender_seq", table_name="messages")
    op.drop_table("messages")
    op.drop_table("id_blocks")
