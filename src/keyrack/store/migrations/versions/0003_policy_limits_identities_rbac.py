"""Key policy and limits, counter snapshots, identities, permissions and roles (issue 3).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=True),
        sa.Column("credits_remaining", sa.BigInteger(), nullable=True),
        sa.Column("credits_refilled_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("credits_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_identities_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint(
            "tenant_id", "external_id", name=op.f("uq_identities_tenant_id_external_id")
        ),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_identities_tenant_id_id")),
    )
    op.create_table(
        "permissions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_permissions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("tenant_id", "slug", name=op.f("uq_permissions_tenant_id_slug")),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_roles_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_roles_tenant_id_name")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("credits_remaining", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("credits_refilled_at_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("credits_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("budget_spent", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("budget_period_start_ms", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_api_keys_tenant_id_identity_id"),
            ["tenant_id", "identity_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_tenant_id_identities"),
            "identities",
            ["tenant_id", "identity_id"],
            ["tenant_id", "id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_tenant_id_identities"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id_identity_id"))
        batch_op.drop_column("budget_period_start_ms")
        batch_op.drop_column("budget_spent")
        batch_op.drop_column("credits_version")
        batch_op.drop_column("credits_refilled_at_ms")
        batch_op.drop_column("credits_remaining")
        batch_op.drop_column("limits")
        batch_op.drop_column("policy")

    op.drop_table("roles")
    op.drop_table("permissions")
    op.drop_table("identities")
