"""Cache invalidation log: ids every process drops from its caches (transactional outbox).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_invalidations",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_cache_invalidations")),
    )
    with op.batch_alter_table("cache_invalidations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cache_invalidations_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cache_invalidations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cache_invalidations_created_at"))

    op.drop_table("cache_invalidations")
