"""Typed table definitions. Every tenant-owned table leads its indexes with ``tenant_id``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; naive values are refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(  # documented below
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002  # part of SQLAlchemy's signature
    ) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012  # SQLAlchemy reads it as a class attribute


class TenantRow(Base):
    """A tenant."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(33))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKeyRow(Base):
    """An end-user API key (its secrets live in ``key_secrets``)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # (tenant_id, id) is unique so secrets can reference a key *of their own tenant*.
        UniqueConstraint("tenant_id", "id"),
        Index(None, "tenant_id", "owner_id"),
        Index(None, "tenant_id", "identity_id"),
        # A unique index rather than a constraint: SQLite adds an index in place, while a
        # constraint would make the migration copy the table, and dropping the old copy under
        # ``PRAGMA foreign_keys=ON`` cascades to ``key_secrets``.
        Index(None, "tenant_id", "system_slot", unique=True),
        # Composite: a key can only ever belong to an identity of its own tenant.
        ForeignKeyConstraint(
            ["tenant_id", "identity_id"], ["identities.tenant_id", "identities.id"]
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    start: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None]
    owner_id: Mapped[str | None] = mapped_column(String(255))
    identity_id: Mapped[str | None] = mapped_column(ID)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    permissions: Mapped[list[str]] = mapped_column(JSON)
    roles: Mapped[list[str]] = mapped_column(JSON)
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    recoverable: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # Policy and limits configuration (NULL: none); see ``keyrack.store.limits_json``.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Counter snapshots written behind from the limit backend (which is authoritative).
    credits_remaining: Mapped[int | None] = mapped_column(BigInteger)
    credits_refilled_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    credits_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    budget_spent: Mapped[int | None] = mapped_column(BigInteger)
    budget_period_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    # A recoverable key's plaintext, sealed by ``ports.SecretSealer`` (never the plaintext).
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    # ``owner_id`` and ``name`` joined by a unit separator, on system keys only: unique per
    # tenant, so one user has at most one system key of a name (see ``system_slot``). NULL on
    # every other key, and NULLs never collide on SQLite or PostgreSQL.
    system_slot: Mapped[str | None] = mapped_column(String(511))


class IdentityRow(Base):
    """The platform's own customer inside a tenant, shared by many keys."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        UniqueConstraint("tenant_id", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    credits_remaining: Mapped[int | None] = mapped_column(BigInteger)
    credits_refilled_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    credits_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PermissionRow(Base):
    """A permission slug of a tenant's API keys (``chat.write``)."""

    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class RoleRow(Base):
    """A named bundle of permission slugs of one tenant."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    permissions: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KeySecretRow(Base):
    """One secret of a key: HMAC digest (unique), pepper version, grace end."""

    __tablename__ = "key_secrets"
    __table_args__ = (
        Index(None, "tenant_id", "key_id"),
        # Composite: a secret can only ever belong to a key of the same tenant.
        ForeignKeyConstraint(
            ["tenant_id", "key_id"], ["api_keys.tenant_id", "api_keys.id"], ondelete="CASCADE"
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    key_id: Mapped[str] = mapped_column(ID)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    pepper_version: Mapped[int] = mapped_column(Integer)
    start: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class ServiceAccountRow(Base):
    """A machine principal; ``tenant_id`` is NULL for platform accounts."""

    __tablename__ = "service_accounts"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    permissions: Mapped[list[str]] = mapped_column(JSON)
    is_bootstrap: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class RootKeyRow(Base):
    """A root key of a service account: digest only, never the key."""

    __tablename__ = "root_keys"
    __table_args__ = (Index(None, "tenant_id", "service_account_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_account_id: Mapped[str] = mapped_column(
        ID, ForeignKey("service_accounts.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str | None] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    pepper_version: Mapped[int] = mapped_column(Integer)
    start: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class CacheInvalidationRow(Base):
    """The invalidation log: ids whose cached entries every process must drop.

    Platform-level infrastructure, not tenant-owned: owner ids (``key_…``, ``rk_…``) are global.
    """

    __tablename__ = "cache_invalidations"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    owner: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)


class UserRow(Base):
    """A human; platform-level (a user may belong to many tenants)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # argon2id encoded hash; NULL for a user who cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class MembershipRow(Base):
    """A user's role in one tenant."""

    __tablename__ = "memberships"
    # The primary key leads with ``tenant_id``; the index serves a user's own memberships.
    __table_args__ = (Index(None, "user_id"),)

    tenant_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InvitationRow(Base):
    """A pending membership by email; its single-use token is stored as a digest only."""

    __tablename__ = "invitations"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID, ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    pepper_version: Mapped[int] = mapped_column(Integer)
    invited_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UserTokenRow(Base):
    """A login session, impersonation session or personal access token: digest only."""

    __tablename__ = "user_tokens"
    __table_args__ = (Index(None, "user_id", "kind", "id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    start: Mapped[str] = mapped_column(String(40))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    pepper_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    impersonator_type: Mapped[str | None] = mapped_column(String(32))
    impersonator_id: Mapped[str | None] = mapped_column(String(255))


class AuditEventRow(Base):
    """One recorded management action; ``tenant_id`` NULL is the platform's own chain.

    No foreign key on ``tenant_id``: the events of a deleted tenant outlive it. ``changed``
    holds field names only, never values.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str | None] = mapped_column(ID)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(255))
    impersonator_type: Mapped[str | None] = mapped_column(String(32))
    impersonator_id: Mapped[str | None] = mapped_column(String(255))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(255))
    # What the HTTP edge saw; free text from the client, so unbounded.
    ip: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    changed: Mapped[list[str]] = mapped_column(JSON)
