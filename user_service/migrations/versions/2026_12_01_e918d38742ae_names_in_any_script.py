"""names in any script: compared as PRECIS forms, look-alikes refused; erased names reserved

Revision ID: e918d38742ae
Revises: 52d1c97ed6cd
Create Date: 2026-12-01 23:30:00.000000+00:00

Each user gets the compared form of its name (canonical, unique: it replaces the unique
lower(username)) and its confusable skeleton (user_service/names.py). Existing names
were Latin letters, digits, '_', '.' and '-', so their compared form is their lower
case, which was unique already; their skeletons are computed here with the same code
that registrations use. Two existing names may share a skeleton ("bob1" and "bobl"):
both keep working; a new name is refused if it looks like any of them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from user_service.names import canonical, skeleton

revision: str = "e918d38742ae"
down_revision: str | None = "52d1c97ed6cd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("canonical", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("skeleton", sa.Text(), nullable=True))
    connection = op.get_bind()
    users = connection.execute(sa.text("SELECT id, username FROM users")).all()
    for user_id, username in users:
        compared = canonical(username) or username.lower()
        connection.execute(
            sa.text("UPDATE users SET canonical = :c, skeleton = :s WHERE id = :id"),
            {"c": compared, "s": skeleton(compared), "id": user_id},
        )
    op.alter_column("users", "canonical", nullable=False)
    op.alter_column("users", "skeleton", nullable=False)
    op.create_unique_constraint(op.f("uq_users_canonical"), "users", ["canonical"])
    op.create_index(op.f("ix_users_skeleton"), "users", ["skeleton"])
    op.drop_index("uq_users_username_lower", table_name="users")
    op.create_table(
        "reserved_names",
        sa.Column("skeleton", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("skeleton", name=op.f("pk_reserved_names")),
    )


def downgrade() -> None:
    op.drop_table("reserved_names")
    op.create_index(
        "uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True
    )
    op.drop_index(op.f("ix_users_skeleton"), table_name="users")
    op.drop_constraint(op.f("uq_users_canonical"), "users", type_="unique")
    op.drop_column("users", "skeleton")
    op.drop_column("users", "canonical")
