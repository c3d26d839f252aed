"""blocks, read receipts and preferences

Revision ID: 95129c3a2d91
Revises: fd7c039bc9c7
Create Date: 2026-12-02 00:30:00.000000+00:00

Messages gain ``hidden`` (sent by someone the receiver blocked; false for every existing
message) and ``read_at`` (null: none was read with receipts on). Events gain the other
user they are about. New tables: blocks, preferences, read_marks.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "95129c3a2d91"
down_revision: str | None = "fd7c039bc9c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("messages", sa.Column("read_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("events", sa.Column("other_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "blocks",
        sa.Column("blocker_id", sa.BigInteger(), nullable=False),
        sa.Column("blocked_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("blocker_id", "blocked_id", name=op.f("pk_blocks")),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("read_receipts", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_preferences")),
    )
    op.create_table(
        "read_marks",
        sa.Column("reader_id", sa.BigInteger(), nullable=False),
        sa.Column("other_id", sa.BigInteger(), nullable=False),
        sa.Column("up_to", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("reader_id", "other_id", name=op.f("pk_read_marks")),
    )


def downgrade() -> None:
    op.drop_table("read_marks")
    op.drop_table("preferences")
    op.drop_table("blocks")
    op.drop_column("events", "other_id")
    op.drop_column("messages", "read_at")
    op.drop_column("messages", "hidden")
