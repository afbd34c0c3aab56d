"""Fakes implementing keyrack's ports, for fast tests without patching our own modules.

``FakeDatabase`` holds plain dicts of domain objects. ``FakeUnitOfWork`` works on a copy of them
and writes the copy back only on ``commit``, so a use case that fails leaves the database as it
was. The repositories mirror ``keyrack.store.repositories``: they are bound to one tenant (or to
the platform) and no call can reach another tenant's rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import anyio.lowlevel

from keyrack.backends.memory import MemoryCache, MemoryLimitStore
from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.backends.sealing import AesGcmSealer
from keyrack.domain.audit import AuditEvent
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import (
    ApiKey,
    Identity,
    KeyRecord,
    KeySecret,
    Limits,
    PermissionDef,
    Role,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.people import Invitation, Member, Membership, TenantRole, User, UserToken
from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import (
    AlreadyMember,
    BackendUnavailable,
    ConcurrentUpdate,
    Conflict,
    DuplicateEmail,
    DuplicateExternalId,
    DuplicatePermission,
    DuplicateRole,
    DuplicateSlug,
)
from keyrack.services.accounts import AccountService
from keyrack.services.graph import build_services as wire
from keyrack.services.identities import IdentityService
from keyrack.services.keys import KeyService
from keyrack.services.ports import (
    CounterSnapshot,
    KeyFilter,
    LastUsed,
    Rehash,
    RootKeyMatch,
    RootRehash,
    TokenMatch,
)
from keyrack.services.rbac import RbacService, granted_permissions
from keyrack.services.tenants import TenantService
from keyrack.services.verify import VerifyService
from keyrack.services.writebehind import WriteBehind


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    at: float = 1_800_000_000.0  # 2027-01-15T08:00:00Z

    def now(self) -> float:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += seconds


class CountingEntropy:
    """A deterministic entropy source: every call returns bytes no earlier call returned.

    Call ``n`` returns ``n`` times a large step, big-endian: values grow with every call (so ids
    made at one clock reading sort in creation order, for the first 4,098 calls) and spread
    over the whole range (so keys differ in their displayed start too).
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        span: int = 256**size
        return (self.calls * (span // 4099) % span).to_bytes(size, "big")


def make_peppers(*versions: int) -> Peppers:
    """Deterministic peppers (32 bytes each) for the given versions; default version 1."""
    return Peppers({v: bytes([v]) * 32 for v in versions or (1,)})


@dataclass(frozen=True, slots=True)
class StoredRootKey:
    """A root key row: the domain object plus what only the store knows."""

    root_key: RootKey
    digest: bytes = field(repr=False)
    pepper_version: int


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user row: the domain object plus its password hash (``has_password`` follows it)."""

    user: User
    password_hash: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoredInvitation:
    """An invitation row: the domain object plus its token's digest."""

    invitation: Invitation
    digest: bytes = field(repr=False)
    pepper_version: int


@dataclass(frozen=True, slots=True)
class StoredUserToken:
    """A user token row: the domain object plus its digest."""

    token: UserToken
    digest: bytes = field(repr=False)
    pepper_version: int


@dataclass
class FakeState:
    """The rows of a fake database; values are frozen, so a copy of the dicts is a snapshot."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    secrets: dict[str, KeySecret] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    root_keys: dict[str, StoredRootKey] = field(default_factory=dict)
    invalidations: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    identities: dict[str, Identity] = field(default_factory=dict)
    permissions: dict[str, PermissionDef] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    sealed_secrets: dict[str, bytes] = field(default_factory=dict)  # by key id
    users: dict[str, StoredUser] = field(default_factory=dict)
    memberships: dict[tuple[str, str], Membership] = field(default_factory=dict)
    invitations: dict[str, StoredInvitation] = field(default_factory=dict)
    user_tokens: dict[str, StoredUserToken] = field(default_factory=dict)
    audit_events: dict[int, AuditEvent] = field(default_factory=dict)

    def copy(self) -> FakeState:
        return FakeState(
            tenants=dict(self.tenants),
            keys=dict(self.keys),
            secrets=dict(self.secrets),
            service_accounts=dict(self.service_accounts),
            root_keys=dict(self.root_keys),
            invalidations=dict(self.invalidations),
            identities=dict(self.identities),
            permissions=dict(self.permissions),
            roles=dict(self.roles),
            sealed_secrets=dict(self.sealed_secrets),
            users=dict(self.users),
            memberships=dict(self.memberships),
            invitations=dict(self.invitations),
            user_tokens=dict(self.user_tokens),
            audit_events=dict(self.audit_events),
        )

    def snapshot(self) -> tuple[dict[Any, object], ...]:
        """Every row, for ``before == after`` assertions."""
        return (
            dict(self.tenants),
            dict(self.keys),
            dict(self.secrets),
            dict(self.service_accounts),
            dict(self.root_keys),
            dict(self.invalidations),
            dict(self.identities),
            dict(self.permissions),
            dict(self.roles),
            dict(self.sealed_secrets),
            dict(self.users),
            dict(self.memberships),
            dict(self.invitations),
            dict(self.user_tokens),
            dict(self.audit_events),
        )


class FakeDatabase(FakeState):
    """The committed state, plus switches tests flip to simulate trouble.

    ``unavailable`` makes every statement (and commit) raise ``BackendUnavailable``, as the SQL
    unit of work does when the database is down. ``statements`` counts every repository call
    and ``commits`` every successful commit. ``locks`` holds the rows an open unit of work
    has locked (keys it updated, invitations and tokens it closed, a tenant's memberships
    behind ``admin_ids(lock=True)``), as PostgreSQL's row locks do until commit or rollback.
    """

    def __init__(self) -> None:
        super().__init__()
        self.unavailable = False
        self.statements = 0
        self.commits = 0
        self.locks: dict[str, object] = {}
        self.last_seq = 0
        self.last_audit_id = 0

    def execute(self) -> None:
        """Account for one statement; fail it when the database is down."""
        if self.unavailable:
            raise BackendUnavailable("the database is unavailable; retry later")
        self.statements += 1

    def apply(self, base: FakeState, state: FakeState) -> None:
        """Write the rows ``state`` changed since ``base`` (a row-level diff, like a commit)."""
        for table in (
            "tenants",
            "keys",
            "secrets",
            "service_accounts",
            "root_keys",
            "invalidations",
            "identities",
            "permissions",
            "roles",
            "sealed_secrets",
            "users",
            "memberships",
            "invitations",
            "user_tokens",
            "audit_events",
        ):
            before: dict[object, object] = getattr(base, table)
            after: dict[object, object] = getattr(state, table)
            committed: dict[object, object] = getattr(self, table)
            for row_id, row in after.items():
                if before.get(row_id) is not row:
                    committed[row_id] = row
            for row_id in before.keys() - after.keys():
                committed.pop(row_id, None)
        self.commits += 1


def _conflict() -> Conflict:
    return Conflict("the change conflicts with existing data")


class FakeTenantRepository:
    """Tenants; a taken slug (or id) raises ``DuplicateSlug`` like the SQL unique index."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, tenant_id: str) -> Tenant | None:
        self._uow.db.execute()
        return self._uow.state.tenants.get(tenant_id)

    async def add(self, tenant: Tenant) -> None:
        self._uow.db.execute()
        if tenant.id in self._uow.state.tenants or any(
            t.slug == tenant.slug for t in self._uow.state.tenants.values()
        ):
            raise DuplicateSlug
        self._uow.state.tenants[tenant.id] = tenant

    async def update(self, tenant: Tenant) -> None:
        self._uow.db.execute()
        stored = self._uow.state.tenants.get(tenant.id)
        if stored is None:
            return
        if any(
            t.slug == tenant.slug and t.id != tenant.id for t in self._uow.state.tenants.values()
        ):
            raise DuplicateSlug
        self._uow.state.tenants[tenant.id] = replace(
            stored,
            name=tenant.name,
            slug=tenant.slug,
            key_prefix=tenant.key_prefix,
            updated_at=tenant.updated_at,
        )

    async def remove(self, tenant_id: str) -> bool:
        """Delete the tenant and cascade to everything it owns (the SQL foreign keys)."""
        self._uow.db.execute()
        s = self._uow.state
        if s.tenants.pop(tenant_id, None) is None:
            return False
        s.keys = {k: v for k, v in s.keys.items() if v.tenant_id != tenant_id}
        s.sealed_secrets = {k: v for k, v in s.sealed_secrets.items() if k in s.keys}
        s.memberships = {k: v for k, v in s.memberships.items() if v.tenant_id != tenant_id}
        s.invitations = {
            k: v for k, v in s.invitations.items() if v.invitation.tenant_id != tenant_id
        }
        s.identities = {k: v for k, v in s.identities.items() if v.tenant_id != tenant_id}
        s.permissions = {k: v for k, v in s.permissions.items() if v.tenant_id != tenant_id}
        s.roles = {k: v for k, v in s.roles.items() if v.tenant_id != tenant_id}
        s.secrets = {k: v for k, v in s.secrets.items() if v.tenant_id != tenant_id}
        s.service_accounts = {
            k: v for k, v in s.service_accounts.items() if v.tenant_id != tenant_id
        }
        s.root_keys = {
            k: v
            for k, v in s.root_keys.items()
            if v.root_key.tenant_id != tenant_id
            and v.root_key.service_account_id in s.service_accounts
        }
        return True

    async def list(
        self, *, limit: int, after: str | None, among: Sequence[str] | None
    ) -> list[Tenant]:
        self._uow.db.execute()
        rows = sorted(self._uow.state.tenants.values(), key=lambda t: t.id)
        rows = [
            t for t in rows if (after is None or t.id > after) and (among is None or t.id in among)
        ]
        return rows[:limit]


class FakeKeyRepository:
    """API keys and secrets of one tenant: every method filters on ``tenant_id``."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    def _mine(self, key_id: str) -> ApiKey | None:
        key = self._uow.state.keys.get(key_id)
        return key if key is not None and key.tenant_id == self.tenant_id else None

    def _check_secret(self, secret: KeySecret) -> None:
        if secret.id in self._uow.state.secrets or any(
            s.digest == secret.digest for s in self._uow.state.secrets.values()
        ):
            raise _conflict()
        if self._mine(secret.key_id) is None:
            raise _conflict()  # foreign key (tenant_id, key_id)

    async def get(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        """The key in this tenant; ``for_update`` locks it, NOWAIT (``ConcurrentUpdate``)."""
        self._uow.db.execute()
        key = self._mine(key_id)
        if for_update and key is not None:
            self._uow.lock_key_nowait(key_id)
        return key

    def _slot_taken(self, key: ApiKey) -> bool:
        """Whether another system key of this tenant has ``key``'s owner and name."""
        return (
            key.system
            and key.owner_id is not None
            and self._system_key(key.owner_id, key.name, other_than=key.id, meanwhile=True)
            is not None
        )

    def _system_key(
        self, owner_id: str, name: str, *, other_than: str = "", meanwhile: bool = False
    ) -> ApiKey | None:
        """The system key of ``owner_id`` named ``name``; ``meanwhile`` also looks at keys
        other units committed since this one began (which the unique index sees).
        """
        rows = [*self._uow.state.keys.values()]
        if meanwhile:
            rows += self._uow.committed_meanwhile("keys")
        return next(
            (
                k
                for k in rows
                if k.tenant_id == self.tenant_id
                and k.system
                and k.owner_id == owner_id
                and k.name == name
                and k.id != other_than
            ),
            None,
        )

    async def add(self, key: ApiKey, secret: KeySecret, *, sealed: bytes | None = None) -> None:
        """Insert; a taken system slot raises ``Conflict`` and leaves nothing behind."""
        self._uow.db.execute()
        if key.tenant_id != self.tenant_id or secret.tenant_id != self.tenant_id:
            raise ValueError("key belongs to another tenant than this repository")
        if self._slot_taken(key):
            raise Conflict("this user already has a system key of that name")
        if key.tenant_id not in self._uow.state.tenants or key.id in self._uow.state.keys:
            raise _conflict()
        self._uow.state.keys[key.id] = key
        if sealed is not None:
            self._uow.state.sealed_secrets[key.id] = sealed
        self._check_secret(secret)
        self._uow.state.secrets[secret.id] = secret

    async def system_key(self, owner_id: str, name: str) -> ApiKey | None:
        """Read committed, like the SQL read: sees a key another unit committed meanwhile."""
        self._uow.db.execute()
        return self._system_key(owner_id, name, meanwhile=True)

    async def sealed_secret(self, key_id: str) -> bytes | None:
        self._uow.db.execute()
        if self._mine(key_id) is None:
            return None
        return self._uow.state.sealed_secrets.get(key_id)

    async def list(self, *, limit: int, after: str | None, where: KeyFilter) -> list[ApiKey]:
        self._uow.db.execute()
        rows = [
            k
            for k in sorted(self._uow.state.keys.values(), key=lambda k: k.id)
            if k.tenant_id == self.tenant_id
            and (after is None or k.id > after)
            and (where.status is None or k.status is where.status)
            and (where.owner_id is None or k.owner_id == where.owner_id)
            and (where.include_system or not k.system)
        ]
        return rows[:limit]

    async def update(self, key: ApiKey, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``; identity, creation and last use are not written.

        Like ``UPDATE … WHERE version = :expected`` under PostgreSQL: the row is locked until
        this unit of work ends, a concurrent writer waits for the lock, then compares against
        the version committed meanwhile (so of two concurrent writers one wins).
        """
        self._uow.db.execute()
        await self._uow.lock_key(key.id)
        stored = self._mine(key.id)
        if stored is None or self._uow.current_version(stored) != expected_version:
            return False
        if self._slot_taken(key):
            raise _conflict()  # the unique index (tenant_id, system_slot)
        self._uow.state.keys[key.id] = replace(
            key,
            tenant_id=stored.tenant_id,
            created_at=stored.created_at,
            last_used_at=stored.last_used_at,
        )
        self._uow.written_keys.add(key.id)
        return True

    async def remove(self, key_id: str) -> bool:
        self._uow.db.execute()
        s = self._uow.state
        s.secrets = {
            k: v
            for k, v in s.secrets.items()
            if not (v.tenant_id == self.tenant_id and v.key_id == key_id)
        }
        if self._mine(key_id) is None:
            return False
        del s.keys[key_id]
        s.sealed_secrets.pop(key_id, None)
        return True

    async def add_secret(self, secret: KeySecret) -> None:
        self._uow.db.execute()
        if secret.tenant_id != self.tenant_id:
            raise ValueError("secret belongs to another tenant than this repository")
        self._check_secret(secret)
        self._uow.state.secrets[secret.id] = secret

    async def retire_secrets(self, key_id: str, *, grace_end: datetime, now: datetime) -> None:
        """The current secret ends at ``grace_end``; secrets still in an older grace end now."""
        self._uow.db.execute()
        for secret_id, s in list(self._uow.state.secrets.items()):
            if s.tenant_id != self.tenant_id or s.key_id != key_id:
                continue
            if s.expires_at is None:
                self._uow.state.secrets[secret_id] = replace(s, expires_at=grace_end)
            elif s.expires_at > now:
                self._uow.state.secrets[secret_id] = replace(s, expires_at=now)

    def _with_identity(self, identity_id: str) -> builtins.list[ApiKey]:
        return sorted(
            (
                k
                for k in self._uow.state.keys.values()
                if k.tenant_id == self.tenant_id and k.identity_id == identity_id
            ),
            key=lambda k: k.id,
        )

    async def ids_with_identity(self, identity_id: str) -> builtins.list[str]:
        self._uow.db.execute()
        return [k.id for k in self._with_identity(identity_id)]

    async def detach_identity(self, identity_id: str) -> builtins.list[str]:
        """Take the identity off its keys, bumping their version (``updated_at``: wall clock)."""
        self._uow.db.execute()
        moment = datetime.now(UTC)
        detached = self._with_identity(identity_id)
        for key in detached:
            self._uow.state.keys[key.id] = replace(
                key, identity_id=None, version=key.version + 1, updated_at=moment
            )
            self._uow.written_keys.add(key.id)
        return [k.id for k in detached]

    def _holding(
        self, attribute: Literal["roles", "permissions"], name: str
    ) -> builtins.list[ApiKey]:
        return sorted(
            (
                k
                for k in self._uow.state.keys.values()
                if k.tenant_id == self.tenant_id and name in getattr(k, attribute)
            ),
            key=lambda k: k.id,
        )

    async def ids_with_role(self, role: str) -> builtins.list[str]:
        self._uow.db.execute()
        return [k.id for k in self._holding("roles", role)]

    async def strip_role(self, role: str) -> builtins.list[str]:
        return self._strip("roles", role)

    async def strip_permission(self, slug: str) -> builtins.list[str]:
        return self._strip("permissions", slug)

    def _strip(self, attribute: Literal["roles", "permissions"], name: str) -> builtins.list[str]:
        """Drop ``name`` from the keys holding it, bumping their version (wall-clock time)."""
        self._uow.db.execute()
        moment = datetime.now(UTC)
        holding = self._holding(attribute, name)
        for key in holding:
            kept = tuple(value for value in getattr(key, attribute) if value != name)
            stripped = (
                replace(key, roles=kept) if attribute == "roles" else replace(key, permissions=kept)
            )
            self._uow.state.keys[key.id] = replace(
                stripped, version=key.version + 1, updated_at=moment
            )
            self._uow.written_keys.add(key.id)
        return [k.id for k in holding]

    async def write_credits(
        self, key_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        """Store a balance snapshot and its version (the key's own version is unchanged)."""
        self._uow.db.execute()
        key = self._mine(key_id)
        if key is not None:
            limits = _with_credits(key.limits, remaining, refilled_at_ms, version)
            self._uow.state.keys[key_id] = replace(key, limits=limits)


def _with_credits(
    limits: Limits, remaining: int | None, refilled_at_ms: int, version: int
) -> Limits:
    """``limits`` with a new balance snapshot, as the credits columns read back.

    Without a credits configuration the SQL columns are written but ignored on read; only the
    version stays visible.
    """
    credits = limits.credits
    if credits is not None:
        credits = replace(credits, remaining=remaining, refilled_at_ms=refilled_at_ms)
    return replace(limits, credits=credits, credits_version=version)


class FakePermissionRepository:
    """Key permissions of one tenant; the slug is unique per tenant like the SQL index."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    def _all(self) -> builtins.list[PermissionDef]:
        return sorted(
            (p for p in self._uow.state.permissions.values() if p.tenant_id == self.tenant_id),
            key=lambda p: p.id,
        )

    async def get(self, permission_id: str) -> PermissionDef | None:
        self._uow.db.execute()
        found = self._uow.state.permissions.get(permission_id)
        return found if found is not None and found.tenant_id == self.tenant_id else None

    async def by_slugs(self, slugs: Sequence[str]) -> builtins.list[PermissionDef]:
        self._uow.db.execute()
        wanted = set(slugs)
        return [p for p in self._all() if p.slug in wanted]

    async def add(self, permission: PermissionDef) -> None:
        self._uow.db.execute()
        if permission.tenant_id != self.tenant_id:
            raise ValueError("permission belongs to another tenant than this repository")
        if (
            permission.tenant_id not in self._uow.state.tenants
            or permission.id in self._uow.state.permissions
        ):
            raise _conflict()
        if any(p.slug == permission.slug for p in self._all()):
            raise DuplicatePermission
        self._uow.state.permissions[permission.id] = permission

    async def remove(self, permission_id: str) -> bool:
        if await self.get(permission_id) is None:
            return False
        del self._uow.state.permissions[permission_id]
        return True

    async def list(self, *, limit: int, after: str | None) -> builtins.list[PermissionDef]:
        self._uow.db.execute()
        return [p for p in self._all() if after is None or p.id > after][:limit]


class FakeRoleRepository:
    """Roles of one tenant; the name is unique per tenant like the SQL index."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    def _all(self) -> builtins.list[Role]:
        return sorted(
            (r for r in self._uow.state.roles.values() if r.tenant_id == self.tenant_id),
            key=lambda r: r.id,
        )

    def _check_unique(self, role: Role) -> None:
        if any(r.name == role.name and r.id != role.id for r in self._all()):
            raise DuplicateRole

    async def get(self, role_id: str) -> Role | None:
        self._uow.db.execute()
        found = self._uow.state.roles.get(role_id)
        return found if found is not None and found.tenant_id == self.tenant_id else None

    async def by_names(self, names: Sequence[str]) -> builtins.list[Role]:
        self._uow.db.execute()
        wanted = set(names)
        return [r for r in self._all() if r.name in wanted]

    async def add(self, role: Role) -> None:
        self._uow.db.execute()
        if role.tenant_id != self.tenant_id:
            raise ValueError("role belongs to another tenant than this repository")
        if role.tenant_id not in self._uow.state.tenants or role.id in self._uow.state.roles:
            raise _conflict()
        self._check_unique(role)
        self._uow.state.roles[role.id] = role

    async def update(self, role: Role, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``; a taken name raises ``DuplicateRole``."""
        stored = await self.get(role.id)
        if stored is None or stored.version != expected_version:
            return False
        self._check_unique(role)
        self._uow.state.roles[role.id] = replace(
            role, tenant_id=stored.tenant_id, created_at=stored.created_at
        )
        return True

    async def remove(self, role_id: str) -> bool:
        if await self.get(role_id) is None:
            return False
        del self._uow.state.roles[role_id]
        return True

    async def list(self, *, limit: int, after: str | None) -> builtins.list[Role]:
        self._uow.db.execute()
        return [r for r in self._all() if after is None or r.id > after][:limit]

    async def strip_permission(self, slug: str) -> None:
        """Drop ``slug`` from every role holding it, bumping its version (wall-clock time)."""
        self._uow.db.execute()
        moment = datetime.now(UTC)
        for role in self._all():
            if slug in role.permissions:
                self._uow.state.roles[role.id] = replace(
                    role,
                    permissions=tuple(p for p in role.permissions if p != slug),
                    version=role.version + 1,
                    updated_at=moment,
                )


class FakeIdentityRepository:
    """Identities of one tenant; ``external_id`` is unique per tenant like the SQL index."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    def _mine(self, identity_id: str) -> Identity | None:
        identity = self._uow.state.identities.get(identity_id)
        return identity if identity is not None and identity.tenant_id == self.tenant_id else None

    def _check_unique(self, identity: Identity) -> None:
        if any(
            i.tenant_id == identity.tenant_id
            and i.external_id == identity.external_id
            and i.id != identity.id
            for i in self._uow.state.identities.values()
        ):
            raise DuplicateExternalId

    async def get(self, identity_id: str) -> Identity | None:
        self._uow.db.execute()
        return self._mine(identity_id)

    async def by_external_id(self, external_id: str) -> Identity | None:
        self._uow.db.execute()
        return next(
            (
                i
                for i in self._uow.state.identities.values()
                if i.tenant_id == self.tenant_id and i.external_id == external_id
            ),
            None,
        )

    async def add(self, identity: Identity) -> None:
        self._uow.db.execute()
        if identity.tenant_id != self.tenant_id:
            raise ValueError("identity belongs to another tenant than this repository")
        if identity.tenant_id not in self._uow.state.tenants:
            raise _conflict()
        if identity.id in self._uow.state.identities:
            raise _conflict()
        self._check_unique(identity)
        self._uow.state.identities[identity.id] = identity

    async def update(self, identity: Identity, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``; the credits snapshot is kept (see ``write_credits``)."""
        self._uow.db.execute()
        stored = self._mine(identity.id)
        if stored is None or stored.version != expected_version:
            return False
        self._check_unique(identity)
        old = stored.limits.credits
        new = identity.limits.credits
        kept = replace(
            identity.limits,
            credits=None
            if new is None
            else replace(
                new,
                remaining=None if old is None else old.remaining,
                refilled_at_ms=0 if old is None else old.refilled_at_ms,
            ),
            credits_version=stored.limits.credits_version,
        )
        self._uow.state.identities[identity.id] = replace(
            identity, tenant_id=stored.tenant_id, created_at=stored.created_at, limits=kept
        )
        return True

    async def remove(self, identity_id: str) -> bool:
        self._uow.db.execute()
        if self._mine(identity_id) is None:
            return False
        if any(k.identity_id == identity_id for k in self._uow.state.keys.values()):
            raise _conflict()  # foreign key (tenant_id, identity_id) of api_keys
        del self._uow.state.identities[identity_id]
        return True

    async def list(
        self, *, limit: int, after: str | None, external_id: str | None = None
    ) -> builtins.list[Identity]:
        self._uow.db.execute()
        rows = [
            i
            for i in sorted(self._uow.state.identities.values(), key=lambda i: i.id)
            if i.tenant_id == self.tenant_id
            and (after is None or i.id > after)
            and (external_id is None or i.external_id == external_id)
        ]
        return rows[:limit]

    async def write_credits(
        self, identity_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        self._uow.db.execute()
        stored = self._mine(identity_id)
        if stored is None:
            return
        credits = stored.limits.credits
        limits = replace(
            stored.limits,
            credits=None
            if credits is None
            else replace(credits, remaining=remaining, refilled_at_ms=refilled_at_ms),
            credits_version=version,
        )
        self._uow.state.identities[identity_id] = replace(stored, limits=limits)


class FakeSecretLookup:
    """The cold-verify lookup by digest, across tenants, joined with the key."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def find(self, digests: Sequence[bytes]) -> KeyRecord | None:
        self._uow.db.execute()
        wanted = set(digests)
        for secret in self._uow.state.secrets.values():
            if secret.digest not in wanted:
                continue
            key = self._uow.state.keys.get(secret.key_id)
            if key is None or key.tenant_id != secret.tenant_id:
                continue
            ends = [m.timestamp() for m in (secret.expires_at, key.expires_at) if m is not None]
            # Like the SQL lookup: the roles' permissions come from a second statement, made
            # only for a key with roles; a role that no longer exists grants nothing.
            granted = await granted_permissions(
                self._uow, key.tenant_id, key.permissions, key.roles
            )
            return KeyRecord(
                key_id=key.id,
                tenant_id=key.tenant_id,
                secret_id=secret.id,
                pepper_version=secret.pepper_version,
                status=key.status,
                valid_until=min(ends) if ends else None,
                name=key.name,
                owner_id=key.owner_id,
                identity_id=key.identity_id,
                meta=key.meta,
                permissions=key.permissions,
                roles=key.roles,
                expires_at=key.expires_at,
                granted=granted,
            )
        return None


class FakeServiceAccountRepository:
    """Service accounts and root keys of one tenant, or of the platform (``None``)."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str | None) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    async def get(self, account_id: str) -> ServiceAccount | None:
        self._uow.db.execute()
        account = self._uow.state.service_accounts.get(account_id)
        return account if account is not None and account.tenant_id == self.tenant_id else None

    async def add(self, account: ServiceAccount) -> None:
        self._uow.db.execute()
        if account.tenant_id != self.tenant_id:
            raise ValueError("account belongs to another scope than this repository")
        if account.id in self._uow.state.service_accounts or (
            account.tenant_id is not None and account.tenant_id not in self._uow.state.tenants
        ):
            raise _conflict()
        self._uow.state.service_accounts[account.id] = account

    async def list(self, *, limit: int, after: str | None) -> list[ServiceAccount]:
        self._uow.db.execute()
        rows = [
            a
            for a in sorted(self._uow.state.service_accounts.values(), key=lambda a: a.id)
            if a.tenant_id == self.tenant_id and (after is None or a.id > after)
        ]
        return rows[:limit]

    async def add_root_key(self, root_key: RootKey, *, digest: bytes, pepper_version: int) -> None:
        self._uow.db.execute()
        if root_key.tenant_id != self.tenant_id:
            raise ValueError("root key belongs to another scope than this repository")
        s = self._uow.state
        if (
            root_key.id in s.root_keys
            or root_key.service_account_id not in s.service_accounts
            or any(r.digest == digest for r in s.root_keys.values())
        ):
            raise _conflict()
        s.root_keys[root_key.id] = StoredRootKey(
            root_key=replace(root_key, revoked_at=None),
            digest=digest,
            pepper_version=pepper_version,
        )

    def _mine(self, root_key_id: str) -> StoredRootKey | None:
        stored = self._uow.state.root_keys.get(root_key_id)
        if stored is None or stored.root_key.tenant_id != self.tenant_id:
            return None
        return stored

    async def get_root_key(self, account_id: str, root_key_id: str) -> RootKey | None:
        self._uow.db.execute()
        stored = self._mine(root_key_id)
        if stored is None or stored.root_key.service_account_id != account_id:
            return None
        return stored.root_key

    async def list_root_keys(self, account_id: str) -> builtins.list[RootKey]:
        self._uow.db.execute()
        return [
            r.root_key
            for r in sorted(self._uow.state.root_keys.values(), key=lambda r: r.root_key.id)
            if r.root_key.tenant_id == self.tenant_id
            and r.root_key.service_account_id == account_id
        ]

    async def revoke_root_key(self, root_key_id: str, *, at: datetime) -> None:
        self._uow.db.execute()
        stored = self._mine(root_key_id)
        if stored is not None:
            self._uow.state.root_keys[root_key_id] = replace(
                stored, root_key=replace(stored.root_key, revoked_at=at)
            )


class FakeRootKeyLookup:
    """Authentication lookup of live root keys by digest, joined with their account."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def find(self, digests: Sequence[bytes]) -> RootKeyMatch | None:
        self._uow.db.execute()
        wanted = set(digests)
        for stored in self._uow.state.root_keys.values():
            if stored.digest not in wanted or stored.root_key.revoked_at is not None:
                continue
            account = self._uow.state.service_accounts.get(stored.root_key.service_account_id)
            if account is None:
                continue
            return RootKeyMatch(
                root_key=stored.root_key, account=account, pepper_version=stored.pepper_version
            )
        return None

    async def bootstrap_exists(self) -> bool:
        self._uow.db.execute()
        return any(
            stored.root_key.revoked_at is None
            and (
                account := self._uow.state.service_accounts.get(stored.root_key.service_account_id)
            )
            is not None
            and account.is_bootstrap
            for stored in self._uow.state.root_keys.values()
        )


class FakeUsageWriter:
    """Write-behind statements; each item is scoped by its own tenant."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def write_last_used(self, items: Sequence[LastUsed]) -> None:
        """Set ``last_used_at`` only where it moves forward."""
        self._uow.db.execute()
        for item in items:
            key = self._uow.state.keys.get(item.key_id)
            if key is None or key.tenant_id != item.tenant_id:
                continue
            if key.last_used_at is None or key.last_used_at < item.at:
                self._uow.state.keys[item.key_id] = replace(key, last_used_at=item.at)

    async def write_rehashes(self, items: Sequence[Rehash]) -> None:
        """Replace old-pepper digests with current ones."""
        self._uow.db.execute()
        for item in items:
            secret = self._uow.state.secrets.get(item.secret_id)
            if secret is None or secret.tenant_id != item.tenant_id:
                continue
            self._uow.state.secrets[item.secret_id] = replace(
                secret, digest=item.digest, pepper_version=item.pepper_version
            )

    async def write_root_rehashes(self, items: Sequence[RootRehash]) -> None:
        """Replace root keys' old-pepper digests."""
        self._uow.db.execute()
        for item in items:
            root = self._uow.state.root_keys.get(item.root_key_id)
            if root is None or root.root_key.tenant_id != item.tenant_id:
                continue
            self._uow.state.root_keys[item.root_key_id] = replace(
                root, digest=item.digest, pepper_version=item.pepper_version
            )

    async def write_counters(self, items: Sequence[CounterSnapshot]) -> None:
        """Store credits snapshots (only while ``credits_version`` matches) and key budgets."""
        self._uow.db.execute()
        state = self._uow.state
        for item in items:
            key = state.keys.get(item.owner)
            if key is not None and key.tenant_id == item.tenant_id:
                limits = _counted(key.limits, item, budget=True)
                if limits is not key.limits:
                    state.keys[key.id] = replace(key, limits=limits)
            identity = state.identities.get(item.owner)
            if identity is not None and identity.tenant_id == item.tenant_id:
                limits = _counted(identity.limits, item, budget=False)
                if limits is not identity.limits:
                    state.identities[identity.id] = replace(identity, limits=limits)


def _counted(limits: Limits, item: CounterSnapshot, *, budget: bool) -> Limits:
    """``limits`` with the snapshots of ``item`` that the SQL ``write_counters`` would keep.

    Returns ``limits`` itself when nothing changes; identities have no budget columns.
    """
    if item.credits is not None and limits.credits_version == item.credits[2]:
        remaining, refilled_at_ms, version = item.credits
        limits = _with_credits(limits, remaining, refilled_at_ms, version)
    if budget and item.budget is not None and limits.budget is not None:
        spent, period_start_ms = item.budget
        counted = replace(limits.budget, spent=spent, period_start_ms=period_start_ms)
        limits = replace(limits, budget=counted)
    return limits


class FakeInvalidationLog:
    """The cross-process invalidation log.

    Sequence numbers are taken when a row is staged and become visible on commit, so, as with a
    database sequence, a later number can commit before an earlier one.
    """

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def record(self, owners: Sequence[str], *, at: datetime) -> None:
        self._uow.db.execute()
        for owner in owners:
            self._uow.db.last_seq += 1
            self._uow.state.invalidations[self._uow.db.last_seq] = (owner, at)

    async def head(self) -> int:
        self._uow.db.execute()
        return max(self._uow.state.invalidations, default=0)

    async def since(self, seq: int, *, limit: int) -> builtins.list[tuple[int, str]]:
        self._uow.db.execute()
        rows = sorted((s, o) for s, (o, _) in self._uow.state.invalidations.items() if s > seq)
        return rows[:limit]

    async def among(self, seqs: Sequence[int]) -> builtins.list[tuple[int, str]]:
        self._uow.db.execute()
        log = self._uow.state.invalidations
        return [(s, log[s][0]) for s in sorted(set(seqs)) if s in log]

    async def prune(self, *, before: datetime) -> None:
        self._uow.db.execute()
        log = self._uow.state.invalidations
        for seq in [s for s, (_, at) in log.items() if at < before]:
            del log[seq]


class FakeUserRepository:
    """Users; the email is unique like the SQL index, and a read never carries the hash."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _user(self, stored: StoredUser) -> User:
        return replace(stored.user, has_password=stored.password_hash is not None)

    async def get(self, user_id: str) -> User | None:
        self._uow.db.execute()
        stored = self._uow.state.users.get(user_id)
        return None if stored is None else self._user(stored)

    async def by_email(self, email: str) -> User | None:
        self._uow.db.execute()
        return next(
            (self._user(s) for s in self._uow.state.users.values() if s.user.email == email),
            None,
        )

    async def password_hash(self, user_id: str) -> str | None:
        self._uow.db.execute()
        stored = self._uow.state.users.get(user_id)
        return None if stored is None else stored.password_hash

    async def add(self, user: User, *, password_hash: str | None) -> None:
        """Insert; a taken email raises ``DuplicateEmail`` (the unit of work goes on)."""
        self._uow.db.execute()
        users = self._uow.state.users
        if any(
            s.user.email == user.email
            for s in [*users.values(), *self._uow.committed_meanwhile("users")]
        ):
            raise DuplicateEmail
        if user.id in users:
            raise _conflict()
        users[user.id] = StoredUser(user=user, password_hash=password_hash)

    async def set_password(self, user_id: str, password_hash: str) -> None:
        self._uow.db.execute()
        stored = self._uow.state.users.get(user_id)
        if stored is not None:
            self._uow.state.users[user_id] = replace(stored, password_hash=password_hash)

    async def list(
        self,
        *,
        limit: int,
        after: str | None,
        tenant_id: str | None = None,
        role: TenantRole | None = None,
    ) -> builtins.list[User]:
        self._uow.db.execute()
        memberships = self._uow.state.memberships.values()

        def kept(user_id: str) -> bool:
            if tenant_id is None and role is None:
                return True
            return any(
                m.user_id == user_id
                and (tenant_id is None or m.tenant_id == tenant_id)
                and (role is None or m.role is role)
                for m in memberships
            )

        rows = [
            self._user(s)
            for s in sorted(self._uow.state.users.values(), key=lambda s: s.user.id)
            if (after is None or s.user.id > after) and kept(s.user.id)
        ]
        return rows[:limit]

    async def memberships(self, user_ids: Sequence[str]) -> builtins.list[Membership]:
        self._uow.db.execute()
        wanted = set(user_ids)
        return sorted(
            (m for m in self._uow.state.memberships.values() if m.user_id in wanted),
            key=lambda m: (m.user_id, m.tenant_id),
        )


class FakeMembershipRepository:
    """Memberships of one tenant, keyed ``(tenant_id, user_id)`` like the SQL primary key."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    async def get(self, user_id: str) -> Membership | None:
        self._uow.db.execute()
        return self._uow.state.memberships.get((self.tenant_id, user_id))

    async def add(self, membership: Membership) -> None:
        """Insert; an existing membership raises ``AlreadyMember`` (the unit of work goes on)."""
        self._uow.db.execute()
        if membership.tenant_id != self.tenant_id:
            raise ValueError("membership belongs to another tenant than this repository")
        s = self._uow.state
        pk = (self.tenant_id, membership.user_id)
        if pk in s.memberships or any(
            (m.tenant_id, m.user_id) == pk for m in self._uow.committed_meanwhile("memberships")
        ):
            raise AlreadyMember
        if self.tenant_id not in s.tenants or membership.user_id not in s.users:
            raise _conflict()  # foreign keys to tenants and users
        s.memberships[(self.tenant_id, membership.user_id)] = membership

    async def set_role(self, user_id: str, role: TenantRole, *, at: datetime) -> bool:
        self._uow.db.execute()
        stored = self._uow.state.memberships.get((self.tenant_id, user_id))
        if stored is None:
            return False
        self._uow.state.memberships[(self.tenant_id, user_id)] = replace(
            stored, role=role, updated_at=at
        )
        return True

    async def remove(self, user_id: str) -> bool:
        self._uow.db.execute()
        return self._uow.state.memberships.pop((self.tenant_id, user_id), None) is not None

    async def list(
        self, *, limit: int, after: str | None, role: TenantRole | None = None
    ) -> builtins.list[Member]:
        self._uow.db.execute()
        s = self._uow.state
        rows = [
            Member(
                membership=m,
                user=replace(
                    s.users[m.user_id].user,
                    has_password=s.users[m.user_id].password_hash is not None,
                ),
            )
            for m in sorted(s.memberships.values(), key=lambda m: m.user_id)
            if m.tenant_id == self.tenant_id
            and m.user_id in s.users
            and (after is None or m.user_id > after)
            and (role is None or m.role is role)
        ]
        return rows[:limit]

    async def admin_ids(self, *, lock: bool) -> builtins.list[str]:
        """The tenant's admins; ``lock`` waits for another unit holding this tenant's lock.

        After the lock, memberships are re-read from the committed rows (keeping this unit's
        own changes), as PostgreSQL's READ COMMITTED statement after ``FOR UPDATE`` does.
        """
        self._uow.db.execute()
        if lock:
            await self._uow.lock_key(f"tenant-members:{self.tenant_id}")
            self._uow.reread("memberships")
        return sorted(
            m.user_id
            for m in self._uow.state.memberships.values()
            if m.tenant_id == self.tenant_id and m.role is TenantRole.ADMIN
        )


class FakeInvitationRepository:
    """Invitations of one tenant; the digest is unique like the SQL index."""

    def __init__(self, uow: FakeUnitOfWork, tenant_id: str) -> None:
        self._uow = uow
        self.tenant_id = tenant_id

    async def get(self, invitation_id: str) -> Invitation | None:
        self._uow.db.execute()
        stored = self._uow.state.invitations.get(invitation_id)
        if stored is None or stored.invitation.tenant_id != self.tenant_id:
            return None
        return stored.invitation

    async def add(self, invitation: Invitation, *, digest: bytes, pepper_version: int) -> None:
        self._uow.db.execute()
        if invitation.tenant_id != self.tenant_id:
            raise ValueError("invitation belongs to another tenant than this repository")
        s = self._uow.state
        if (
            invitation.tenant_id not in s.tenants
            or invitation.id in s.invitations
            or any(i.digest == digest for i in s.invitations.values())
        ):
            raise _conflict()
        s.invitations[invitation.id] = StoredInvitation(
            invitation=invitation, digest=digest, pepper_version=pepper_version
        )

    async def list(
        self, *, limit: int, after: str | None, pending_at: datetime | None = None
    ) -> builtins.list[Invitation]:
        self._uow.db.execute()
        rows = [
            i
            for i in sorted(
                (s.invitation for s in self._uow.state.invitations.values()), key=lambda i: i.id
            )
            if i.tenant_id == self.tenant_id
            and (after is None or i.id > after)
            and (pending_at is None or i.state(pending_at) == "pending")
        ]
        return rows[:limit]

    async def close(
        self,
        invitation_id: str,
        *,
        accepted_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> bool:
        """A guarded update: waits for a concurrent close, then checks the committed row."""
        if (accepted_at is None) == (revoked_at is None):
            raise ValueError("give exactly one of accepted_at and revoked_at")
        self._uow.db.execute()
        await self._uow.lock_key(f"invitation:{invitation_id}")
        stored: StoredInvitation | None = self._uow.current_row("invitations", invitation_id)
        if stored is None or stored.invitation.tenant_id != self.tenant_id:
            return False
        open_ = stored.invitation
        if open_.accepted_at is not None or open_.revoked_at is not None:
            return False
        closed = (
            replace(open_, accepted_at=accepted_at)
            if accepted_at is not None
            else replace(open_, revoked_at=revoked_at)
        )
        self._uow.state.invitations[invitation_id] = replace(stored, invitation=closed)
        return True


class FakeInvitationLookup:
    """Invitations by token digest, across tenants."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def find(self, digests: Sequence[bytes]) -> Invitation | None:
        self._uow.db.execute()
        wanted = set(digests)
        return next(
            (s.invitation for s in self._uow.state.invitations.values() if s.digest in wanted),
            None,
        )


class FakeUserTokenRepository:
    """User tokens (platform-level); the digest is unique like the SQL index."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, token: UserToken, *, digest: bytes, pepper_version: int) -> None:
        self._uow.db.execute()
        s = self._uow.state
        if (
            token.user_id not in s.users
            or token.id in s.user_tokens
            or any(t.digest == digest for t in s.user_tokens.values())
        ):
            raise _conflict()
        s.user_tokens[token.id] = StoredUserToken(
            token=token, digest=digest, pepper_version=pepper_version
        )

    async def find(self, digests: Sequence[bytes]) -> TokenMatch | None:
        self._uow.db.execute()
        s = self._uow.state
        wanted = set(digests)
        stored = next((t for t in s.user_tokens.values() if t.digest in wanted), None)
        if stored is None or stored.token.user_id not in s.users:
            return None
        user = s.users[stored.token.user_id]
        memberships = sorted(
            (m for m in s.memberships.values() if m.user_id == user.user.id),
            key=lambda m: m.tenant_id,
        )
        return TokenMatch(
            token=stored.token,
            user=replace(user.user, has_password=user.password_hash is not None),
            memberships=tuple(memberships),
            pepper_version=stored.pepper_version,
        )

    async def get(self, user_id: str, token_id: str) -> UserToken | None:
        self._uow.db.execute()
        stored = self._uow.state.user_tokens.get(token_id)
        if stored is None or stored.token.user_id != user_id:
            return None
        return stored.token

    async def list(
        self, user_id: str, *, kind: str, limit: int, after: str | None
    ) -> builtins.list[UserToken]:
        self._uow.db.execute()
        rows = [
            t
            for t in sorted(
                (s.token for s in self._uow.state.user_tokens.values()), key=lambda t: t.id
            )
            if t.user_id == user_id and t.kind == kind and (after is None or t.id > after)
        ]
        return rows[:limit]

    async def revoke(self, token_id: str, *, at: datetime) -> bool:
        """A guarded update: revokes only a token live at ``at``, as committed or staged."""
        self._uow.db.execute()
        await self._uow.lock_key(f"user-token:{token_id}")
        stored: StoredUserToken | None = self._uow.current_row("user_tokens", token_id)
        if stored is None or not stored.token.is_live(at):
            return False
        self._uow.state.user_tokens[token_id] = replace(
            stored, token=replace(stored.token, revoked_at=at)
        )
        return True


class FakeAuditLog:
    """The audit log: events get increasing ids when staged, like an autoincrement column."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def record(self, event: AuditEvent) -> None:
        self._uow.db.execute()
        self._uow.db.last_audit_id += 1
        self._uow.state.audit_events[self._uow.db.last_audit_id] = event


class FakeUnitOfWork:
    """One transaction over a ``FakeDatabase``: staged writes land only on ``commit``.

    Entering takes a snapshot; repositories read and write that copy; ``commit`` writes the rows
    changed since the snapshot back to the database, and leaving drops whatever was staged
    after the last commit (a rollback). Unique constraints are checked within the copy only.
    """

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.committed = False
        self.entered = False
        self.written_keys: set[str] = set()
        self._base: FakeState | None = None
        self._state: FakeState | None = None

    @property
    def state(self) -> FakeState:
        """The staged rows (only inside ``async with``)."""
        if self._state is None:
            raise RuntimeError("unit of work used outside 'async with'")
        return self._state

    async def __aenter__(self) -> Self:
        self.entered = True
        self._base = self.db.copy()
        self._state = self._base.copy()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._base = self._state = None
        for key_id in [k for k, holder in self.db.locks.items() if holder is self]:
            del self.db.locks[key_id]

    async def lock_key(self, key_id: str) -> None:
        """Take the row lock of a key, waiting while another open unit of work holds it."""
        while self.db.locks.get(key_id) not in (None, self):
            await anyio.sleep(0)
        self.db.locks[key_id] = self
        await anyio.lowlevel.checkpoint()  # let a concurrent request run into the lock

    def lock_key_nowait(self, key_id: str) -> None:
        """Take the row lock of a key, or raise ``ConcurrentUpdate`` if another unit holds it."""
        if self.db.locks.get(key_id) not in (None, self):
            raise ConcurrentUpdate
        self.db.locks[key_id] = self

    def current_row(self, table: str, row_id: object) -> Any:
        """The row an UPDATE would see: ours if this unit changed it, else the committed one."""
        assert self._base is not None
        staged = getattr(self.state, table).get(row_id)
        if staged is not getattr(self._base, table).get(row_id):
            return staged
        return getattr(self.db, table).get(row_id)

    def committed_meanwhile(self, table: str) -> builtins.list[Any]:
        """Rows of ``table`` other units committed since this one began.

        A unique index sees them (``INSERT … ON CONFLICT`` conflicts with them) although this
        unit's snapshot does not.
        """
        assert self._base is not None
        base: dict[object, object] = getattr(self._base, table)
        committed: dict[object, object] = getattr(self.db, table)
        return [row for row_id, row in committed.items() if row_id not in base]

    def reread(self, table: str) -> None:
        """Re-read ``table`` from the committed rows, keeping this unit's own changes.

        What a READ COMMITTED statement sees after waiting for a lock: rows other units
        committed since this one began.
        """
        assert self._base is not None
        base: dict[object, object] = getattr(self._base, table)
        staged: dict[object, object] = getattr(self.state, table)
        changed = {k: v for k, v in staged.items() if base.get(k) is not v}
        removed = base.keys() - staged.keys()
        committed: dict[object, object] = dict(getattr(self.db, table))
        setattr(self._base, table, dict(committed))
        committed.update(changed)
        for row_id in removed:
            committed.pop(row_id, None)
        setattr(self.state, table, committed)

    def current_version(self, key: ApiKey) -> int | None:
        """The version an UPDATE would see: ours if we wrote it, else the committed one."""
        if key.id in self.written_keys or self._base is None or key.id not in self._base.keys:
            return key.version
        committed = self.db.keys.get(key.id)
        return None if committed is None else committed.version

    @property
    def tenants(self) -> FakeTenantRepository:
        return FakeTenantRepository(self)

    @property
    def secrets(self) -> FakeSecretLookup:
        return FakeSecretLookup(self)

    @property
    def root_keys(self) -> FakeRootKeyLookup:
        return FakeRootKeyLookup(self)

    @property
    def usage(self) -> FakeUsageWriter:
        return FakeUsageWriter(self)

    @property
    def invalidations(self) -> FakeInvalidationLog:
        return FakeInvalidationLog(self)

    def keys(self, tenant_id: str) -> FakeKeyRepository:
        self.state  # noqa: B018  # raises outside 'async with', like the SQL unit of work
        return FakeKeyRepository(self, tenant_id)

    def service_accounts(self, tenant_id: str | None) -> FakeServiceAccountRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakeServiceAccountRepository(self, tenant_id)

    def identities(self, tenant_id: str) -> FakeIdentityRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakeIdentityRepository(self, tenant_id)

    def permissions(self, tenant_id: str) -> FakePermissionRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakePermissionRepository(self, tenant_id)

    def roles(self, tenant_id: str) -> FakeRoleRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakeRoleRepository(self, tenant_id)

    @property
    def users(self) -> FakeUserRepository:
        return FakeUserRepository(self)

    @property
    def user_tokens(self) -> FakeUserTokenRepository:
        return FakeUserTokenRepository(self)

    @property
    def invitation_tokens(self) -> FakeInvitationLookup:
        return FakeInvitationLookup(self)

    @property
    def audit(self) -> FakeAuditLog:
        return FakeAuditLog(self)

    def memberships(self, tenant_id: str) -> FakeMembershipRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakeMembershipRepository(self, tenant_id)

    def invitations(self, tenant_id: str) -> FakeInvitationRepository:
        self.state  # noqa: B018  # raises outside 'async with'
        return FakeInvitationRepository(self, tenant_id)

    async def commit(self) -> None:
        state = self.state
        self.db.execute()
        assert self._base is not None
        self.db.apply(self._base, state)
        self._base = state.copy()
        self.committed = True


class FakeUnitOfWorkFactory:
    """The ``UnitOfWorkFactory`` services receive; counts and keeps every unit it opened."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.units: list[FakeUnitOfWork] = []

    def __call__(self) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.db)
        self.units.append(uow)
        return uow

    @property
    def opened(self) -> int:
        """How many units of work services asked for."""
        return len(self.units)


@dataclass
class FakeServices:
    """Every service wired over the fakes, as ``open_runtime`` wires them over SQL."""

    db: FakeDatabase
    uow: FakeUnitOfWorkFactory
    clock: FakeClock
    entropy: CountingEntropy
    peppers: Peppers
    key_cache: MemoryCache[KeyRecord]
    principal_cache: MemoryCache[Principal]
    writes: WriteBehind
    tenants: TenantService
    keys: KeyService
    accounts: AccountService
    verifier: VerifyService
    identities: IdentityService
    rbac: RbacService


def build_services(
    *,
    db: FakeDatabase | None = None,
    clock: FakeClock | None = None,
    peppers: Peppers | None = None,
    cache_size: int = 10_000,
    positive_ttl: float = 30.0,
    negative_ttl: float = 2.0,
    stale_if_error: float = 300.0,
) -> FakeServices:
    """Build every service over a (new or given) fake database with a fake clock."""
    db = FakeDatabase() if db is None else db
    clock = FakeClock() if clock is None else clock
    peppers = make_peppers(1) if peppers is None else peppers
    uow = FakeUnitOfWorkFactory(db)
    entropy = CountingEntropy()
    key_cache: MemoryCache[KeyRecord] = MemoryCache(cache_size)
    principal_cache: MemoryCache[Principal] = MemoryCache(cache_size)
    services = wire(
        uow=uow,
        peppers=peppers,
        clock=clock,
        entropy=entropy,
        limits=MemoryLimitStore(clock.now),
        hasher=Argon2PasswordHasher.for_tests(),
        sealer=AesGcmSealer({1: bytes(range(32))}),
        key_cache=key_cache,
        principal_cache=principal_cache,
        positive_ttl=positive_ttl,
        negative_ttl=negative_ttl,
        stale_if_error=stale_if_error,
    )
    return FakeServices(
        db=db,
        uow=uow,
        clock=clock,
        entropy=entropy,
        peppers=peppers,
        key_cache=key_cache,
        principal_cache=principal_cache,
        writes=services.writes,
        tenants=services.tenants,
        keys=services.keys,
        accounts=services.accounts,
        verifier=services.verifier,
        identities=services.identities,
        rbac=services.rbac,
    )


def tenant_principal(tenant_id: str, *permissions: Permission) -> Principal:
    """A service-account principal scoped to ``tenant_id`` holding ``permissions``."""
    return Principal(
        kind="service_account",
        id="sa_test",
        tenant_id=tenant_id,
        permissions=frozenset(permissions),
    )
