"""Repositories: rows <-> domain objects. Bound to a tenant; they never commit."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keyrack.domain.limits import build_plan
from keyrack.domain.models import (
    NO_LIMITS,
    NO_POLICY,
    ApiKey,
    IdentityRef,
    KeyRecord,
    KeySecret,
    KeyStatus,
    Limits,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.permission_query import effective_permissions
from keyrack.domain.permissions import Permission
from keyrack.domain.policy import KeyPolicy
from keyrack.errors import ConcurrentUpdate, Conflict, DuplicateSlug
from keyrack.services.ports import (
    CounterSnapshot,
    KeyFilter,
    LastUsed,
    Rehash,
    RootKeyMatch,
    RootRehash,
)
from keyrack.store.limits_json import (
    budget_columns,
    credits_columns,
    limits_from_row,
    limits_to_json,
)
from keyrack.store.rbac import SqlRoleRepository, may_hold
from keyrack.store.tables import (
    ApiKeyRow,
    CacheInvalidationRow,
    IdentityRow,
    KeySecretRow,
    RootKeyRow,
    ServiceAccountRow,
    TenantRow,
)

_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE for a NOWAIT lock conflict


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        slug=row.slug,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlTenantRepository:
    """Tenants (the platform-level table)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or ``None``."""
        row = await self._session.get(TenantRow, tenant_id)
        return None if row is None else _tenant(row)

    async def _flush_unique(self) -> None:
        try:
            await self._session.flush()
        except IntegrityError as exc:
            raise DuplicateSlug from exc

    async def add(self, tenant: Tenant) -> None:
        """Insert; a taken slug raises ``DuplicateSlug``."""
        self._session.add(
            TenantRow(
                id=tenant.id,
                name=tenant.name,
                slug=tenant.slug,
                key_prefix=tenant.key_prefix,
                created_at=tenant.created_at,
                updated_at=tenant.updated_at,
            )
        )
        await self._flush_unique()

    async def update(self, tenant: Tenant) -> None:
        """Write back name, slug, prefix and update time; a taken slug raises ``DuplicateSlug``."""
        try:
            await self._session.execute(
                update(TenantRow)
                .where(TenantRow.id == tenant.id)
                .values(
                    name=tenant.name,
                    slug=tenant.slug,
                    key_prefix=tenant.key_prefix,
                    updated_at=tenant.updated_at,
                )
            )
        except IntegrityError as exc:
            raise DuplicateSlug from exc

    async def remove(self, tenant_id: str) -> bool:
        """Delete the tenant; foreign keys cascade to everything it owns."""
        result = await self._session.execute(delete(TenantRow).where(TenantRow.id == tenant_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def list(
        self, *, limit: int, after: str | None, among: Sequence[str] | None
    ) -> list[Tenant]:
        """Tenants by id after the cursor; ``among`` restricts to those ids (empty: none)."""
        if among is not None and not among:
            return []
        stmt = select(TenantRow).order_by(TenantRow.id).limit(limit)
        if after is not None:
            stmt = stmt.where(TenantRow.id > after)
        if among is not None:
            stmt = stmt.where(TenantRow.id.in_(set(among)))
        return [_tenant(row) for row in await self._session.scalars(stmt)]


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        start=row.start,
        status=KeyStatus(row.status),
        expires_at=row.expires_at,
        owner_id=row.owner_id,
        identity_id=row.identity_id,
        meta=row.meta,
        permissions=tuple(row.permissions),
        roles=tuple(row.roles),
        system=row.system,
        recoverable=row.recoverable,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        version=row.version,
        policy=policy_from_json(row.policy),
        limits=_key_limits(row),
    )


def _key_limits(row: ApiKeyRow) -> Limits:
    return limits_from_row(
        row.limits,
        row.credits_remaining,
        row.credits_refilled_at_ms,
        row.credits_version,
        row.budget_spent,
        row.budget_period_start_ms,
    )


def policy_to_json(policy: KeyPolicy) -> dict[str, Any] | None:
    """The ``policy`` column of a key: its user-facing fields, or ``None`` when empty."""
    if policy.is_empty:
        return None
    return {
        "ip_allowlist": list(policy.ip_allowlist),
        "allowed_origins": list(policy.allowed_origins),
        "allowed_endpoints": list(policy.allowed_endpoints),
        "blocked_endpoints": list(policy.blocked_endpoints),
        "require_tls": policy.require_tls,
        "max_tokens_per_request": policy.max_tokens_per_request,
    }


def policy_from_json(data: dict[str, Any] | None) -> KeyPolicy:
    """Decode the ``policy`` column (stored values are canonical, so no re-normalizing)."""
    if not data:
        return NO_POLICY
    return KeyPolicy(
        ip_allowlist=tuple(data.get("ip_allowlist", ())),
        allowed_origins=tuple(data.get("allowed_origins", ())),
        allowed_endpoints=tuple(data.get("allowed_endpoints", ())),
        blocked_endpoints=tuple(data.get("blocked_endpoints", ())),
        require_tls=bool(data.get("require_tls", False)),
        max_tokens_per_request=data.get("max_tokens_per_request"),
    )


SLOT_SEPARATOR: Final = "\x1f"  # ASCII unit separator: never part of a user id


def system_slot(owner_id: str, name: str) -> str:
    """The ``system_slot`` of user ``owner_id``'s system key ``name`` (unique per tenant).

    Raises:
        ValueError: ``owner_id`` contains the separator (user ids never do), so the slot
            would not tell owner and name apart.
    """
    if SLOT_SEPARATOR in owner_id:
        raise ValueError("owner id contains the slot separator")
    return f"{owner_id}{SLOT_SEPARATOR}{name}"


def _slot_of(key: ApiKey) -> str | None:
    if not key.system or key.owner_id is None:
        return None
    return system_slot(key.owner_id, key.name)


def _key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "description": key.description,
        "start": key.start,
        "status": key.status.value,
        "expires_at": key.expires_at,
        "owner_id": key.owner_id,
        "identity_id": key.identity_id,
        "meta": key.meta,
        "permissions": list(key.permissions),
        "roles": list(key.roles),
        "system": key.system,
        "system_slot": _slot_of(key),
        "recoverable": key.recoverable,
        "version": key.version,
        "updated_at": key.updated_at,
        "revoked_at": key.revoked_at,
        "policy": policy_to_json(key.policy),
        "limits": limits_to_json(key.limits),
        **credits_columns(key.limits),
        **budget_columns(key.limits),
    }


def _secret_row(secret: KeySecret) -> KeySecretRow:
    return KeySecretRow(
        id=secret.id,
        tenant_id=secret.tenant_id,
        key_id=secret.key_id,
        digest=secret.digest,
        pepper_version=secret.pepper_version,
        start=secret.start,
        created_at=secret.created_at,
        expires_at=secret.expires_at,
    )


class SqlKeyRepository:
    """API keys of one tenant; every statement filters on ``tenant_id``."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id

    async def get(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        """The key in this tenant, or ``None``; ``for_update`` locks it (PostgreSQL, NOWAIT)."""
        stmt = select(ApiKeyRow).where(
            ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.id == key_id
        )
        if for_update:
            # SQLite has no row locks (SQLAlchemy omits the clause there); its single writer
            # plus the version check in ``update`` decide instead.
            stmt = stmt.with_for_update(nowait=True)
        try:
            row = await self._session.scalar(stmt)
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == _LOCK_NOT_AVAILABLE:
                raise ConcurrentUpdate from exc
            raise
        return None if row is None else _key(row)

    async def add(self, key: ApiKey, secret: KeySecret, *, sealed: bytes | None = None) -> None:
        """Insert a key, its first secret and, for a recoverable key, its sealed plaintext.

        A second system key of the same owner and name raises ``Conflict``. The insert is
        ``ON CONFLICT (tenant_id, system_slot) DO NOTHING``, so the transaction stays usable
        (the caller may read the winner with ``system_key``); on PostgreSQL it first waits for
        a concurrent transaction inserting the same slot, and conflicts only if that commits.
        """
        if key.tenant_id != self.tenant_id or secret.tenant_id != self.tenant_id:
            raise ValueError("key belongs to another tenant than this repository")
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        result = await self._session.execute(
            insert(ApiKeyRow)
            .values(
                id=key.id,
                tenant_id=key.tenant_id,
                created_at=key.created_at,
                sealed_secret=sealed,
                **_key_values(key),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "system_slot"])
        )
        if not result.rowcount:  # type: ignore[attr-defined]  # CursorResult of an INSERT
            raise Conflict("this user already has a system key of that name")
        self._session.add(_secret_row(secret))
        await self._session.flush()

    async def system_key(self, owner_id: str, name: str) -> ApiKey | None:
        """The system key ``name`` of user ``owner_id`` in this tenant (one unique-index read)."""
        if SLOT_SEPARATOR in owner_id:
            return None
        row = await self._session.scalar(
            select(ApiKeyRow).where(
                ApiKeyRow.tenant_id == self.tenant_id,
                ApiKeyRow.system_slot == system_slot(owner_id, name),
            )
        )
        return None if row is None else _key(row)

    async def sealed_secret(self, key_id: str) -> bytes | None:
        """The sealed plaintext of a recoverable key of this tenant, or ``None``."""
        value = await self._session.scalar(
            select(ApiKeyRow.sealed_secret).where(
                ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.id == key_id
            )
        )
        return None if value is None else bytes(value)

    async def list(self, *, limit: int, after: str | None, where: KeyFilter) -> list[ApiKey]:
        """Keys of this tenant by id after the cursor."""
        stmt = (
            select(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == self.tenant_id)
            .order_by(ApiKeyRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(ApiKeyRow.id > after)
        if where.status is not None:
            stmt = stmt.where(ApiKeyRow.status == where.status.value)
        if where.owner_id is not None:
            stmt = stmt.where(ApiKeyRow.owner_id == where.owner_id)
        if not where.include_system:
            stmt = stmt.where(ApiKeyRow.system.is_(False))
        return [_key(row) for row in await self._session.scalars(stmt)]

    async def update(self, key: ApiKey, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``."""
        result = await self._session.execute(
            update(ApiKeyRow)
            .where(
                ApiKeyRow.tenant_id == self.tenant_id,
                ApiKeyRow.id == key.id,
                ApiKeyRow.version == expected_version,
            )
            .values(**_key_values(key))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    async def remove(self, key_id: str) -> bool:
        """Delete the key (its secrets go with it)."""
        await self._session.execute(
            delete(KeySecretRow).where(
                KeySecretRow.tenant_id == self.tenant_id, KeySecretRow.key_id == key_id
            )
        )
        result = await self._session.execute(
            delete(ApiKeyRow).where(ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.id == key_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def write_credits(
        self, key_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        """Store a balance snapshot and its version."""
        await self._session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.id == key_id)
            .values(
                credits_remaining=remaining,
                credits_refilled_at_ms=refilled_at_ms,
                credits_version=version,
            )
        )

    async def add_secret(self, secret: KeySecret) -> None:
        """Attach a secret to a key of this tenant."""
        if secret.tenant_id != self.tenant_id:
            raise ValueError("secret belongs to another tenant than this repository")
        self._session.add(_secret_row(secret))
        await self._session.flush()

    async def retire_secrets(self, key_id: str, *, grace_end: datetime, now: datetime) -> None:
        """Current secret ends at ``grace_end``; secrets still in an older grace end ``now``."""
        mine = and_(KeySecretRow.tenant_id == self.tenant_id, KeySecretRow.key_id == key_id)
        await self._session.execute(
            update(KeySecretRow)
            .where(mine, KeySecretRow.expires_at.is_not(None), KeySecretRow.expires_at > now)
            .values(expires_at=now)
        )
        await self._session.execute(
            update(KeySecretRow)
            .where(mine, KeySecretRow.expires_at.is_(None))
            .values(expires_at=grace_end)
        )

    async def ids_with_identity(self, identity_id: str) -> builtins.list[str]:
        """Ids of this tenant's keys that belong to ``identity_id``, in id order."""
        rows = await self._session.scalars(
            select(ApiKeyRow.id)
            .where(ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.identity_id == identity_id)
            .order_by(ApiKeyRow.id)
        )
        return list(rows)

    async def detach_identity(self, identity_id: str) -> builtins.list[str]:
        """Take ``identity_id`` off every key of this tenant; the ids of those keys.

        Each detached key gets a new version (a concurrent compare-and-set update of it then
        fails) and ``updated_at``. The port passes no time, so this is the process's wall clock.
        """
        result = await self._session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == self.tenant_id, ApiKeyRow.identity_id == identity_id)
            .values(identity_id=None, version=ApiKeyRow.version + 1, updated_at=datetime.now(UTC))
            .returning(ApiKeyRow.id)
        )
        return sorted(result.scalars())

    async def ids_with_role(self, role: str) -> builtins.list[str]:
        """Ids of this tenant's keys that hold the role named ``role``, in id order."""
        rows = await self._session.execute(
            select(ApiKeyRow.id, ApiKeyRow.roles)
            .where(ApiKeyRow.tenant_id == self.tenant_id, may_hold(ApiKeyRow.roles, role))
            .order_by(ApiKeyRow.id)
        )
        return [key_id for key_id, roles in rows.tuples() if role in roles]

    async def strip_role(self, role: str) -> builtins.list[str]:
        """Remove the role named ``role`` from every key of this tenant; the ids changed."""
        return await self._strip("roles", role)

    async def strip_permission(self, slug: str) -> builtins.list[str]:
        """Remove the direct permission ``slug`` from every key of this tenant; the ids changed."""
        return await self._strip("permissions", slug)

    async def _strip(
        self, column: Literal["roles", "permissions"], name: str
    ) -> builtins.list[str]:
        """Drop ``name`` from a JSON list column of each key holding it, in id (lock) order.

        Each changed key gets a new version (a concurrent compare-and-set update of it then
        fails) and ``updated_at``; the port passes no time, so this is the wall clock.
        """
        rows = await self._session.scalars(
            select(ApiKeyRow)
            .where(
                ApiKeyRow.tenant_id == self.tenant_id, may_hold(getattr(ApiKeyRow, column), name)
            )
            .order_by(ApiKeyRow.id)
            .with_for_update()
            # Rows read earlier in this transaction are refreshed from the locked versions.
            .execution_options(populate_existing=True)
        )
        now = datetime.now(UTC)
        changed: builtins.list[str] = []
        for row in rows:
            held: builtins.list[str] = getattr(row, column)
            if name in held:  # the prefilter may match where the list does not
                # A new list object, so the ORM sees the JSON value change.
                setattr(row, column, [value for value in held if value != name])
                row.version += 1
                row.updated_at = now
                changed.append(row.id)
        await self._session.flush()
        return changed


_RECORD_COLUMNS = (
    KeySecretRow.id,
    KeySecretRow.key_id,
    KeySecretRow.tenant_id,
    KeySecretRow.pepper_version,
    KeySecretRow.expires_at,
    ApiKeyRow.status,
    ApiKeyRow.expires_at,
    ApiKeyRow.name,
    ApiKeyRow.owner_id,
    ApiKeyRow.identity_id,
    ApiKeyRow.meta,
    ApiKeyRow.permissions,
    ApiKeyRow.roles,
    ApiKeyRow.policy,
    ApiKeyRow.limits,
    ApiKeyRow.credits_remaining,
    ApiKeyRow.credits_refilled_at_ms,
    ApiKeyRow.credits_version,
    ApiKeyRow.budget_spent,
    ApiKeyRow.budget_period_start_ms,
    IdentityRow.external_id,
    IdentityRow.meta,
    IdentityRow.limits,
    IdentityRow.credits_remaining,
    IdentityRow.credits_refilled_at_ms,
    IdentityRow.credits_version,
)


class SqlSecretLookup:
    """The cold verify: one indexed query by digest that joins everything verify needs.

    Not tenant-bound by design: the digest of a ≥160-bit secret is the identifier, and the
    service compares the found tenant with the caller's scope before answering.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, digests: Sequence[bytes]) -> KeyRecord | None:
        """The record of the secret with one of ``digests`` (with its identity and grants)."""
        stmt = (
            select(*_RECORD_COLUMNS)
            .join(
                ApiKeyRow,
                and_(
                    ApiKeyRow.id == KeySecretRow.key_id,
                    ApiKeyRow.tenant_id == KeySecretRow.tenant_id,
                ),
            )
            .outerjoin(
                IdentityRow,
                and_(
                    IdentityRow.id == ApiKeyRow.identity_id,
                    IdentityRow.tenant_id == ApiKeyRow.tenant_id,
                ),
            )
            .where(KeySecretRow.digest.in_(digests))
            .limit(1)
        )
        row = (await self._session.execute(stmt)).first()
        if row is None:
            return None
        (
            secret_id,
            key_id,
            tenant_id,
            pepper_version,
            secret_end,
            status,
            key_end,
            name,
            owner_id,
            identity_id,
            meta,
            permissions,
            roles,
            policy,
            limits,
            credits_remaining,
            credits_refilled_at_ms,
            credits_version,
            budget_spent,
            budget_period_start_ms,
            external_id,
            identity_meta,
            identity_limits_json,
            identity_remaining,
            identity_refilled_at_ms,
            identity_credits_version,
        ) = row
        ends = [moment.timestamp() for moment in (secret_end, key_end) if moment is not None]
        key_limits = limits_from_row(
            limits,
            credits_remaining,
            credits_refilled_at_ms,
            credits_version,
            budget_spent,
            budget_period_start_ms,
        )
        identity = None
        identity_limits = NO_LIMITS
        if identity_id is not None and external_id is not None:
            identity = IdentityRef(identity_id, external_id, identity_meta)
            identity_limits = limits_from_row(
                identity_limits_json,
                identity_remaining,
                identity_refilled_at_ms,
                identity_credits_version,
            )
        key_policy = policy_from_json(policy)
        granted = await granted_permissions(
            self._session, tenant_id, tuple(permissions), tuple(roles)
        )
        return KeyRecord(
            key_id=key_id,
            tenant_id=tenant_id,
            secret_id=secret_id,
            pepper_version=pepper_version,
            status=KeyStatus(status),
            valid_until=min(ends) if ends else None,
            name=name,
            owner_id=owner_id,
            identity_id=identity_id,
            meta=meta,
            permissions=tuple(permissions),
            roles=tuple(roles),
            expires_at=key_end,
            granted=granted,
            policy=None if key_policy.is_empty else key_policy,
            plan=build_plan(
                key_id=key_id,
                rate_limits=key_limits.rate_limits,
                credits=key_limits.credits,
                credits_version=key_limits.credits_version,
                budget=key_limits.budget,
                max_concurrency=key_limits.max_concurrency,
                lease_ttl_seconds=key_limits.lease_ttl_seconds,
                identity_id=None if identity is None else identity_id,
                identity_rate_limits=identity_limits.rate_limits,
                identity_credits=identity_limits.credits,
                identity_credits_version=identity_limits.credits_version,
            ),
            identity=identity,
        )


async def granted_permissions(
    session: AsyncSession, tenant_id: str, permissions: tuple[str, ...], roles: tuple[str, ...]
) -> frozenset[str]:
    """A key's direct permissions plus its roles' (one more query, only for a key with roles).

    A role the key names that no longer exists grants nothing (fail closed).
    """
    if not roles:
        return frozenset(permissions)
    found = await SqlRoleRepository(session, tenant_id).by_names(roles)
    return effective_permissions(permissions, {r.name: r.permissions for r in found}, roles)


def _account(row: ServiceAccountRow) -> ServiceAccount:
    return ServiceAccount(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        permissions=frozenset(
            Permission(p) for p in row.permissions if p in Permission.__members__.values()
        ),
        is_bootstrap=row.is_bootstrap,
        created_at=row.created_at,
    )


def _root_key(row: RootKeyRow) -> RootKey:
    return RootKey(
        id=row.id,
        service_account_id=row.service_account_id,
        tenant_id=row.tenant_id,
        start=row.start,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class SqlServiceAccountRepository:
    """Service accounts of one tenant, or of the platform when ``tenant_id`` is ``None``."""

    def __init__(self, session: AsyncSession, tenant_id: str | None) -> None:
        self._session = session
        self.tenant_id = tenant_id

    def _scope(self) -> Any:  # a SQLAlchemy boolean clause
        if self.tenant_id is None:
            return ServiceAccountRow.tenant_id.is_(None)
        return ServiceAccountRow.tenant_id == self.tenant_id

    async def get(self, account_id: str) -> ServiceAccount | None:
        """The account in this scope, or ``None``."""
        row = await self._session.scalar(
            select(ServiceAccountRow).where(self._scope(), ServiceAccountRow.id == account_id)
        )
        return None if row is None else _account(row)

    async def add(self, account: ServiceAccount) -> None:
        """Insert an account of this scope."""
        if account.tenant_id != self.tenant_id:
            raise ValueError("account belongs to another scope than this repository")
        self._session.add(
            ServiceAccountRow(
                id=account.id,
                tenant_id=account.tenant_id,
                name=account.name,
                permissions=sorted(account.permissions),
                is_bootstrap=account.is_bootstrap,
                created_at=account.created_at,
            )
        )
        await self._session.flush()

    async def list(self, *, limit: int, after: str | None) -> list[ServiceAccount]:
        """Accounts of this scope by id after the cursor."""
        stmt = (
            select(ServiceAccountRow)
            .where(self._scope())
            .order_by(ServiceAccountRow.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(ServiceAccountRow.id > after)
        return [_account(row) for row in await self._session.scalars(stmt)]

    def _root_scope(self) -> Any:  # a SQLAlchemy boolean clause
        if self.tenant_id is None:
            return RootKeyRow.tenant_id.is_(None)
        return RootKeyRow.tenant_id == self.tenant_id

    async def add_root_key(self, root_key: RootKey, *, digest: bytes, pepper_version: int) -> None:
        """Insert a root key of an account of this scope."""
        if root_key.tenant_id != self.tenant_id:
            raise ValueError("root key belongs to another scope than this repository")
        self._session.add(
            RootKeyRow(
                id=root_key.id,
                service_account_id=root_key.service_account_id,
                tenant_id=root_key.tenant_id,
                digest=digest,
                pepper_version=pepper_version,
                start=root_key.start,
                created_at=root_key.created_at,
                revoked_at=None,
            )
        )
        await self._session.flush()

    async def get_root_key(self, account_id: str, root_key_id: str) -> RootKey | None:
        """A root key of an account in this scope."""
        row = await self._session.scalar(
            select(RootKeyRow).where(
                self._root_scope(),
                RootKeyRow.service_account_id == account_id,
                RootKeyRow.id == root_key_id,
            )
        )
        return None if row is None else _root_key(row)

    async def list_root_keys(self, account_id: str) -> builtins.list[RootKey]:
        """Root keys of an account in this scope, oldest first."""
        rows = await self._session.scalars(
            select(RootKeyRow)
            .where(self._root_scope(), RootKeyRow.service_account_id == account_id)
            .order_by(RootKeyRow.id)
        )
        return [_root_key(row) for row in rows]

    async def revoke_root_key(self, root_key_id: str, *, at: datetime) -> None:
        """Mark a root key of this scope revoked."""
        await self._session.execute(
            update(RootKeyRow)
            .where(self._root_scope(), RootKeyRow.id == root_key_id)
            .values(revoked_at=at)
        )


class SqlRootKeyLookup:
    """Authentication lookup of root keys by digest (the digest is the identifier)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, digests: Sequence[bytes]) -> RootKeyMatch | None:
        """The live root key with one of ``digests``, joined with its account."""
        row = (
            await self._session.execute(
                select(RootKeyRow, ServiceAccountRow)
                .join(ServiceAccountRow, ServiceAccountRow.id == RootKeyRow.service_account_id)
                .where(RootKeyRow.digest.in_(digests), RootKeyRow.revoked_at.is_(None))
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        root_row, account_row = row
        return RootKeyMatch(
            root_key=_root_key(root_row),
            account=_account(account_row),
            pepper_version=root_row.pepper_version,
        )

    async def bootstrap_exists(self) -> bool:
        """Whether a live root key of the bootstrap account exists."""
        stmt = select(
            exists()
            .where(RootKeyRow.service_account_id == ServiceAccountRow.id)
            .where(ServiceAccountRow.is_bootstrap.is_(True), RootKeyRow.revoked_at.is_(None))
        )
        return bool(await self._session.scalar(stmt))


class SqlUsageWriter:
    """Batched write-behind statements (executemany), each row scoped by its tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def write_root_rehashes(self, items: Sequence[RootRehash]) -> None:
        """Replace root keys' old-pepper digests (rare: one statement each)."""
        await _write_root_rehashes(self._session, items)

    async def write_last_used(self, items: Sequence[LastUsed]) -> None:
        """Set ``last_used_at`` where it moves forward."""
        table = cast(Table, ApiKeyRow.__table__)
        keys = table.c
        stmt = (
            update(table)
            .where(
                keys.tenant_id == bindparam("b_tenant"),
                keys.id == bindparam("b_key"),
                or_(keys.last_used_at.is_(None), keys.last_used_at < bindparam("b_at")),
            )
            .values(last_used_at=bindparam("b_at"))
        )
        connection = await self._session.connection()
        await connection.execute(
            stmt, [{"b_tenant": i.tenant_id, "b_key": i.key_id, "b_at": i.at} for i in items]
        )

    async def write_rehashes(self, items: Sequence[Rehash]) -> None:
        """Replace old-pepper digests with current ones."""
        table = cast(Table, KeySecretRow.__table__)
        secrets = table.c
        stmt = (
            update(table)
            .where(secrets.tenant_id == bindparam("b_tenant"), secrets.id == bindparam("b_id"))
            .values(digest=bindparam("b_digest"), pepper_version=bindparam("b_version"))
        )
        connection = await self._session.connection()
        await connection.execute(
            stmt,
            [
                {
                    "b_tenant": i.tenant_id,
                    "b_id": i.secret_id,
                    "b_digest": i.digest,
                    "b_version": i.pepper_version,
                }
                for i in items
            ],
        )

    async def write_counters(self, items: Sequence[CounterSnapshot]) -> None:
        """Store credits and budget snapshots.

        A balance is written only while the row's ``credits_version`` is the snapshot's: an
        explicit set through the API (a newer version) is never overwritten by an older counter.
        """
        connection = await self._session.connection()
        for table, prefix in ((ApiKeyRow.__table__, "key_"), (IdentityRow.__table__, "idn_")):
            columns = cast(Table, table).c
            mine = [item for item in items if item.owner.startswith(prefix)]
            credits = [item for item in mine if item.credits is not None]
            if credits:
                await connection.execute(
                    update(cast(Table, table))
                    .where(
                        columns.tenant_id == bindparam("b_tenant"),
                        columns.id == bindparam("b_id"),
                        columns.credits_version == bindparam("b_version"),
                    )
                    .values(
                        credits_remaining=bindparam("b_remaining"),
                        credits_refilled_at_ms=bindparam("b_refilled"),
                    ),
                    [
                        {
                            "b_tenant": item.tenant_id,
                            "b_id": item.owner,
                            "b_remaining": item.credits[0],
                            "b_refilled": item.credits[1],
                            "b_version": item.credits[2],
                        }
                        for item in credits
                        if item.credits is not None
                    ],
                )
        budgets = [i for i in items if i.budget is not None and i.owner.startswith("key_")]
        if budgets:
            keys = cast(Table, ApiKeyRow.__table__).c
            await connection.execute(
                update(cast(Table, ApiKeyRow.__table__))
                .where(keys.tenant_id == bindparam("b_tenant"), keys.id == bindparam("b_id"))
                .values(
                    budget_spent=bindparam("b_spent"),
                    budget_period_start_ms=bindparam("b_start"),
                ),
                [
                    {
                        "b_tenant": item.tenant_id,
                        "b_id": item.owner,
                        "b_spent": item.budget[0],
                        "b_start": item.budget[1],
                    }
                    for item in budgets
                    if item.budget is not None
                ],
            )


async def _write_root_rehashes(session: AsyncSession, items: Sequence[RootRehash]) -> None:
    for item in items:
        scope = (
            RootKeyRow.tenant_id.is_(None)
            if item.tenant_id is None
            else RootKeyRow.tenant_id == item.tenant_id
        )
        await session.execute(
            update(RootKeyRow)
            .where(scope, RootKeyRow.id == item.root_key_id)
            .values(digest=item.digest, pepper_version=item.pepper_version)
            .execution_options(synchronize_session=False)
        )


class SqlInvalidationLog:
    """The cross-process invalidation log (see ``keyrack.services.invalidation``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, owners: Sequence[str], *, at: datetime) -> None:
        """Append ``owners`` in the current transaction."""
        self._session.add_all(CacheInvalidationRow(owner=owner, created_at=at) for owner in owners)
        await self._session.flush()

    async def head(self) -> int:
        """The newest sequence number, 0 when empty."""
        value = await self._session.scalar(select(func.max(CacheInvalidationRow.seq)))
        return int(value or 0)

    async def since(self, seq: int, *, limit: int) -> builtins.list[tuple[int, str]]:
        """Entries after ``seq``, oldest first."""
        rows = await self._session.execute(
            select(CacheInvalidationRow.seq, CacheInvalidationRow.owner)
            .where(CacheInvalidationRow.seq > seq)
            .order_by(CacheInvalidationRow.seq)
            .limit(limit)
        )
        return [(int(s), str(o)) for s, o in rows]

    async def among(self, seqs: Sequence[int]) -> builtins.list[tuple[int, str]]:
        """Entries with one of these sequence numbers (late commits)."""
        rows = await self._session.execute(
            select(CacheInvalidationRow.seq, CacheInvalidationRow.owner).where(
                CacheInvalidationRow.seq.in_(seqs)
            )
        )
        return [(int(s), str(o)) for s, o in rows]

    async def prune(self, *, before: datetime) -> None:
        """Delete entries older than ``before``."""
        await self._session.execute(
            delete(CacheInvalidationRow).where(CacheInvalidationRow.created_at < before)
        )
