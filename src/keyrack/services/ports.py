"""The Protocols services depend on; ``store`` and ``backends`` implement them."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from keyrack.domain.audit import AuditEvent
from keyrack.domain.limits import CreditCharge, CreditState, LimitAnswer, LimitRequest
from keyrack.domain.models import (
    ApiKey,
    Identity,
    KeyRecord,
    KeySecret,
    KeyStatus,
    PermissionDef,
    Role,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.people import Invitation, Member, Membership, TenantRole, User, UserToken


class Clock(Protocol):
    """The source of time; tests pass a fake one."""

    def now(self) -> float:
        """Epoch seconds."""
        ...


Entropy = Callable[[int], bytes]
"""Returns that many cryptographically random bytes (``secrets.token_bytes`` in production)."""


class TenantRepository(Protocol):
    """Tenants: the one table that is not itself tenant-owned."""

    async def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or ``None``."""
        ...

    async def add(self, tenant: Tenant) -> None:
        """Insert a tenant; a duplicate slug raises ``DuplicateSlug``."""
        ...

    async def update(self, tenant: Tenant) -> None:
        """Write back a changed tenant; a duplicate slug raises ``DuplicateSlug``."""
        ...

    async def remove(self, tenant_id: str) -> bool:
        """Delete a tenant and everything it owns; whether it existed."""
        ...

    async def list(
        self, *, limit: int, after: str | None, among: Sequence[str] | None
    ) -> list[Tenant]:
        """Tenants ordered by id, after the cursor id; ``among`` restricts to those ids."""
        ...


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Filters of a key listing."""

    status: KeyStatus | None = None
    owner_id: str | None = None
    include_system: bool = False


class KeyRepository(Protocol):
    """API keys and their secrets, bound to one tenant: no query can leave it."""

    tenant_id: str

    async def get(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        """The key, or ``None`` (also for another tenant's key).

        With ``for_update``, lock the row for this transaction where the database can; if
        another transaction holds the lock, raise ``ConcurrentUpdate`` instead of waiting.
        """
        ...

    async def add(self, key: ApiKey, secret: KeySecret, *, sealed: bytes | None = None) -> None:
        """Insert a key with its first secret (and, for recoverable keys, the sealed plaintext).

        A second system key with the same owner and name raises ``Conflict``.
        """
        ...

    async def system_key(self, owner_id: str, name: str) -> ApiKey | None:
        """The system key ``name`` of user ``owner_id`` in this tenant, or ``None``."""
        ...

    async def sealed_secret(self, key_id: str) -> bytes | None:
        """The sealed plaintext of a recoverable key, or ``None``."""
        ...

    async def list(self, *, limit: int, after: str | None, where: KeyFilter) -> list[ApiKey]:
        """Keys ordered by id after the cursor id."""
        ...

    async def update(self, key: ApiKey, *, expected_version: int) -> bool:
        """Write ``key`` if its stored version is still ``expected_version`` (optimistic lock).

        Returns:
            Whether the row was written; ``False`` means a concurrent change won.
        """
        ...

    async def remove(self, key_id: str) -> bool:
        """Delete the key and its secrets; whether it existed."""
        ...

    async def add_secret(self, secret: KeySecret) -> None:
        """Attach another secret to an existing key."""
        ...

    async def retire_secrets(self, key_id: str, *, grace_end: datetime, now: datetime) -> None:
        """End the key's current secret at ``grace_end`` and any older live one at ``now``."""
        ...

    async def ids_with_identity(self, identity_id: str) -> builtins.list[str]:
        """Ids of the keys that belong to ``identity_id``."""
        ...

    async def detach_identity(self, identity_id: str) -> builtins.list[str]:
        """Take ``identity_id`` off every key that has it; the ids of those keys."""
        ...

    async def ids_with_role(self, role: str) -> builtins.list[str]:
        """Ids of the keys that hold the role named ``role``."""
        ...

    async def strip_role(self, role: str) -> builtins.list[str]:
        """Remove the role named ``role`` from every key; the ids of the keys changed."""
        ...

    async def strip_permission(self, slug: str) -> builtins.list[str]:
        """Remove the direct permission ``slug`` from every key; the ids of the keys changed."""
        ...

    async def write_credits(
        self, key_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        """Store a balance snapshot and its version (an explicit set or adjustment)."""
        ...


class IdentityRepository(Protocol):
    """Identities of one tenant."""

    tenant_id: str

    async def get(self, identity_id: str) -> Identity | None:
        """The identity, or ``None`` (also for another tenant's)."""
        ...

    async def by_external_id(self, external_id: str) -> Identity | None:
        """The identity with this ``external_id``, or ``None``."""
        ...

    async def add(self, identity: Identity) -> None:
        """Insert; a taken ``external_id`` raises ``DuplicateExternalId``."""
        ...

    async def update(self, identity: Identity, *, expected_version: int) -> bool:
        """Write if the stored version is still ``expected_version``; whether it was written.

        A taken ``external_id`` raises ``DuplicateExternalId``.
        """
        ...

    async def remove(self, identity_id: str) -> bool:
        """Delete (keys must have been detached first); whether it existed."""
        ...

    async def list(
        self, *, limit: int, after: str | None, external_id: str | None = None
    ) -> builtins.list[Identity]:
        """Identities ordered by id after the cursor id, optionally one ``external_id``."""
        ...

    async def write_credits(
        self, identity_id: str, *, remaining: int | None, refilled_at_ms: int, version: int
    ) -> None:
        """Store a balance snapshot and its version."""
        ...


class PermissionRepository(Protocol):
    """The permission slugs of one tenant's API keys."""

    tenant_id: str

    async def get(self, permission_id: str) -> PermissionDef | None:
        """The permission, or ``None``."""
        ...

    async def by_slugs(self, slugs: Sequence[str]) -> builtins.list[PermissionDef]:
        """The permissions among ``slugs`` that exist."""
        ...

    async def add(self, permission: PermissionDef) -> None:
        """Insert; a taken slug raises ``DuplicatePermission``."""
        ...

    async def remove(self, permission_id: str) -> bool:
        """Delete; whether it existed."""
        ...

    async def list(self, *, limit: int, after: str | None) -> builtins.list[PermissionDef]:
        """Permissions ordered by id after the cursor id."""
        ...


class RoleRepository(Protocol):
    """The roles of one tenant."""

    tenant_id: str

    async def get(self, role_id: str) -> Role | None:
        """The role, or ``None``."""
        ...

    async def by_names(self, names: Sequence[str]) -> builtins.list[Role]:
        """The roles among ``names`` that exist."""
        ...

    async def add(self, role: Role) -> None:
        """Insert; a taken name raises ``DuplicateRole``."""
        ...

    async def update(self, role: Role, *, expected_version: int) -> bool:
        """Write if the stored version is still ``expected_version``; whether it was written."""
        ...

    async def remove(self, role_id: str) -> bool:
        """Delete; whether it existed."""
        ...

    async def list(self, *, limit: int, after: str | None) -> builtins.list[Role]:
        """Roles ordered by id after the cursor id."""
        ...

    async def strip_permission(self, slug: str) -> None:
        """Remove ``slug`` from every role of the tenant."""
        ...


class SecretLookup(Protocol):
    """Finds the verify record of a presented key by digest, across tenants, in one query."""

    async def find(self, digests: Sequence[bytes]) -> KeyRecord | None:
        """The record whose secret has one of ``digests`` (one per pepper version)."""
        ...


@dataclass(frozen=True, slots=True)
class RootKeyMatch:
    """A root key found by digest, with its account, for authentication."""

    root_key: RootKey
    account: ServiceAccount
    pepper_version: int


class ServiceAccountRepository(Protocol):
    """Service accounts and root keys, bound to one tenant or to the platform (``None``)."""

    tenant_id: str | None

    async def get(self, account_id: str) -> ServiceAccount | None:
        """The account in this scope, or ``None``."""
        ...

    async def add(self, account: ServiceAccount) -> None:
        """Insert an account."""
        ...

    async def list(self, *, limit: int, after: str | None) -> list[ServiceAccount]:
        """Accounts of this scope ordered by id after the cursor id."""
        ...

    async def add_root_key(self, root_key: RootKey, *, digest: bytes, pepper_version: int) -> None:
        """Insert a root key of an account of this scope."""
        ...

    async def get_root_key(self, account_id: str, root_key_id: str) -> RootKey | None:
        """A root key of an account of this scope, or ``None``."""
        ...

    async def list_root_keys(self, account_id: str) -> builtins.list[RootKey]:
        """The root keys of an account of this scope, oldest first."""
        ...

    async def revoke_root_key(self, root_key_id: str, *, at: datetime) -> None:
        """Mark a root key revoked."""
        ...


class RootKeyLookup(Protocol):
    """Finds a live root key by digest, across scopes, for authentication."""

    async def find(self, digests: Sequence[bytes]) -> RootKeyMatch | None:
        """The live (unrevoked) root key with one of ``digests``, or ``None``."""
        ...

    async def bootstrap_exists(self) -> bool:
        """Whether the platform bootstrap account has a live root key."""
        ...


@dataclass(frozen=True, slots=True)
class LastUsed:
    """A write-behind update of a key's ``last_used_at``."""

    tenant_id: str
    key_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Rehash:
    """A write-behind re-hash of a secret found under an old pepper."""

    tenant_id: str
    secret_id: str
    digest: bytes
    pepper_version: int

    def __repr__(self) -> str:
        return f"Rehash(secret_id={self.secret_id!r}, pepper_version={self.pepper_version})"


@dataclass(frozen=True, slots=True)
class RootRehash:
    """A write-behind re-hash of a root key found under an old pepper."""

    tenant_id: str | None
    root_key_id: str
    digest: bytes
    pepper_version: int

    def __repr__(self) -> str:
        return f"RootRehash(root_key_id={self.root_key_id!r}, pepper_version={self.pepper_version})"


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """A write-behind snapshot of a credits balance or budget counter from the limit store.

    ``owner`` is a key id (``key_…``) or identity id (``idn_…``); a balance snapshot is written
    only while the stored ``credits_version`` still equals ``version`` (an explicit set wins).
    """

    tenant_id: str
    owner: str
    credits: tuple[int, int, int] | None = None
    """``(remaining, refilled_at_ms, version)``."""
    budget: tuple[int, int] | None = None
    """``(spent, period_start_ms)`` (keys only)."""


class UsageWriter(Protocol):
    """Batched writes that verify defers off its hot path."""

    async def write_last_used(self, items: Sequence[LastUsed]) -> None:
        """Apply ``last_used_at`` updates (each scoped by its tenant)."""
        ...

    async def write_rehashes(self, items: Sequence[Rehash]) -> None:
        """Replace digests found under an old pepper with current-pepper digests."""
        ...

    async def write_root_rehashes(self, items: Sequence[RootRehash]) -> None:
        """The same for root keys (each scoped by its tenant, or the platform)."""
        ...

    async def write_counters(self, items: Sequence[CounterSnapshot]) -> None:
        """Store credits and budget snapshots (each scoped by its tenant)."""
        ...


class InvalidationLog(Protocol):
    """The cross-process cache invalidation log (see ``keyrack.services.invalidation``)."""

    async def record(self, owners: Sequence[str], *, at: datetime) -> None:
        """Append owner ids in the current transaction."""
        ...

    async def head(self) -> int:
        """The newest sequence number, 0 when empty."""
        ...

    async def since(self, seq: int, *, limit: int) -> builtins.list[tuple[int, str]]:
        """``(seq, owner)`` entries after ``seq``, oldest first."""
        ...

    async def among(self, seqs: Sequence[int]) -> builtins.list[tuple[int, str]]:
        """Entries with one of these sequence numbers."""
        ...

    async def prune(self, *, before: datetime) -> None:
        """Delete entries older than ``before``."""
        ...


class UserRepository(Protocol):
    """Users: platform-level rows (a user may belong to many tenants)."""

    async def get(self, user_id: str) -> User | None:
        """The user, or ``None``."""
        ...

    async def by_email(self, email: str) -> User | None:
        """The user with this (normalised) email, or ``None``."""
        ...

    async def password_hash(self, user_id: str) -> str | None:
        """The stored argon2 hash, or ``None`` when the user has no password."""
        ...

    async def add(self, user: User, *, password_hash: str | None) -> None:
        """Insert a user; a taken email raises ``DuplicateEmail``."""
        ...

    async def set_password(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash."""
        ...

    async def list(
        self,
        *,
        limit: int,
        after: str | None,
        tenant_id: str | None = None,
        role: TenantRole | None = None,
    ) -> builtins.list[User]:
        """Users ordered by id after the cursor id.

        ``tenant_id`` keeps members of that tenant; ``role`` keeps holders of that role (in
        ``tenant_id``, or in any tenant).
        """
        ...

    async def memberships(self, user_ids: Sequence[str]) -> builtins.list[Membership]:
        """Every membership of these users, ordered by user id then tenant id."""
        ...


class MembershipRepository(Protocol):
    """Memberships of one tenant: no query can leave it."""

    tenant_id: str

    async def get(self, user_id: str) -> Membership | None:
        """The user's membership in this tenant, or ``None``."""
        ...

    async def add(self, membership: Membership) -> None:
        """Insert a membership; an existing one raises ``AlreadyMember``."""
        ...

    async def set_role(self, user_id: str, role: TenantRole, *, at: datetime) -> bool:
        """Change a member's role; whether the member existed."""
        ...

    async def remove(self, user_id: str) -> bool:
        """Delete a membership; whether it existed."""
        ...

    async def list(
        self, *, limit: int, after: str | None, role: TenantRole | None = None
    ) -> builtins.list[Member]:
        """Members (with their users) ordered by user id after the cursor id."""
        ...

    async def admin_ids(self, *, lock: bool) -> builtins.list[str]:
        """User ids of the tenant's admins.

        With ``lock``, serialise membership changes of this tenant until the transaction ends,
        so two demotions cannot both pass the last-admin check.
        """
        ...


class InvitationRepository(Protocol):
    """Invitations of one tenant: no query can leave it."""

    tenant_id: str

    async def get(self, invitation_id: str) -> Invitation | None:
        """The invitation, or ``None``."""
        ...

    async def add(self, invitation: Invitation, *, digest: bytes, pepper_version: int) -> None:
        """Insert an invitation with its token's digest."""
        ...

    async def list(
        self, *, limit: int, after: str | None, pending_at: datetime | None = None
    ) -> builtins.list[Invitation]:
        """Invitations ordered by id after the cursor id.

        With ``pending_at``, only those neither accepted, revoked nor expired at that time.
        """
        ...

    async def close(
        self,
        invitation_id: str,
        *,
        accepted_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> bool:
        """Mark an open invitation accepted or revoked.

        Returns:
            ``False`` when it was no longer open (a concurrent accept or revoke won).
        """
        ...


class InvitationLookup(Protocol):
    """Find an invitation by its token, whatever its tenant (the token is the credential)."""

    async def find(self, digests: Sequence[bytes]) -> Invitation | None:
        """The invitation whose token has one of ``digests``, or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """A user token found by digest, with its user and the user's memberships."""

    token: UserToken
    user: User
    memberships: tuple[Membership, ...]
    pepper_version: int


class UserTokenRepository(Protocol):
    """Sessions, impersonation sessions and personal access tokens (platform-level)."""

    async def add(self, token: UserToken, *, digest: bytes, pepper_version: int) -> None:
        """Insert a token with its digest."""
        ...

    async def find(self, digests: Sequence[bytes]) -> TokenMatch | None:
        """The token with one of ``digests`` (live or not), with its user, or ``None``."""
        ...

    async def get(self, user_id: str, token_id: str) -> UserToken | None:
        """One token of ``user_id``, or ``None``."""
        ...

    async def list(
        self, user_id: str, *, kind: str, limit: int, after: str | None
    ) -> builtins.list[UserToken]:
        """The user's tokens of ``kind`` ordered by id after the cursor id."""
        ...

    async def revoke(self, token_id: str, *, at: datetime) -> bool:
        """Revoke a live token; whether it was live."""
        ...


class AuditLog(Protocol):
    """Where management changes are recorded, in the change's own transaction."""

    async def record(self, event: AuditEvent) -> None:
        """Add ``event``; if it cannot be written, the transaction must fail."""
        ...


class PasswordHasher(Protocol):
    """A slow, salted password hash (argon2id). Both calls may take tens of milliseconds."""

    async def hash(self, password: str) -> str:
        """Hash a new password."""
        ...

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``.

        ``None`` (no such user, or no password) spends the same time and answers ``False``,
        so timing does not tell accounts apart.
        """
        ...

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with weaker parameters than the current ones."""
        ...


class SecretSealer(Protocol):
    """Authenticated encryption of secrets that must be shown again (system keys)."""

    def seal(self, plaintext: str, *, tenant_id: str, object_id: str) -> bytes:
        """Encrypt ``plaintext`` bound to its tenant and object id."""
        ...

    def open(self, sealed: bytes, *, tenant_id: str, object_id: str) -> str:
        """Decrypt; ``SecretUnreadable`` when tampered, moved or its key version is gone."""
        ...


class UnitOfWork(Protocol):
    """One transaction: repositories share it; nothing is written until ``commit``."""

    @property
    def tenants(self) -> TenantRepository:
        """Tenants."""
        ...

    @property
    def secrets(self) -> SecretLookup:
        """The cold-verify lookup."""
        ...

    @property
    def root_keys(self) -> RootKeyLookup:
        """The authentication lookup."""
        ...

    @property
    def usage(self) -> UsageWriter:
        """Write-behind statements."""
        ...

    @property
    def invalidations(self) -> InvalidationLog:
        """The cross-process cache invalidation log."""
        ...

    def keys(self, tenant_id: str) -> KeyRepository:
        """The key repository bound to ``tenant_id``."""
        ...

    def service_accounts(self, tenant_id: str | None) -> ServiceAccountRepository:
        """The service-account repository bound to a tenant or the platform."""
        ...

    def identities(self, tenant_id: str) -> IdentityRepository:
        """The identity repository bound to ``tenant_id``."""
        ...

    def permissions(self, tenant_id: str) -> PermissionRepository:
        """The permission repository bound to ``tenant_id``."""
        ...

    def roles(self, tenant_id: str) -> RoleRepository:
        """The role repository bound to ``tenant_id``."""
        ...

    @property
    def users(self) -> UserRepository:
        """Users."""
        ...

    @property
    def user_tokens(self) -> UserTokenRepository:
        """Sessions and personal access tokens."""
        ...

    @property
    def invitation_tokens(self) -> InvitationLookup:
        """Invitations by token."""
        ...

    @property
    def audit(self) -> AuditLog:
        """The audit log."""
        ...

    def memberships(self, tenant_id: str) -> MembershipRepository:
        """The membership repository bound to ``tenant_id``."""
        ...

    def invitations(self, tenant_id: str) -> InvitationRepository:
        """The invitation repository bound to ``tenant_id``."""
        ...

    async def commit(self) -> None:
        """Commit the transaction."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless ``commit`` ran."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


T = TypeVar("T")


class Cache(Protocol, Generic[T]):
    """A bounded cache of lookups by digest, including misses (``None`` values).

    Entries carry an owner id so one change (revoke, rotate …) drops every digest of its
    object. A multi-replica implementation broadcasts ``invalidate`` to the other replicas.
    """

    def get(self, digest: bytes) -> tuple[T | None, float] | None:
        """``(value_or_None, expires_at)`` for a cached digest, or ``None`` if not cached."""
        ...

    def put(self, digest: bytes, value: T | None, *, owner: str | None, expires_at: float) -> None:
        """Cache a found value (with its owner id) or a miss (``None``) until ``expires_at``."""
        ...

    def invalidate(self, owner: str) -> None:
        """Drop every entry owned by ``owner``."""
        ...

    def clear(self) -> None:
        """Drop everything (used when a whole tenant goes away)."""
        ...


class LimitStore(Protocol):
    """Rate limits, credits, budgets and concurrency leases: the counters verify charges.

    ``apply`` is one atomic step (``keyrack.domain.limits.apply``): all or nothing, in the
    contract's order. Implementations: ``MemoryLimitStore`` (one process) and
    ``RedisLimitStore`` (shared by every replica, one round trip per call). Time comes from the
    store itself (the injected clock, or Redis).
    """

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        """Decide and, when everything admits (and not ``dry_run``), consume.

        Raises:
            BackendUnavailable: The store cannot be reached.
        """
        ...

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        """Give a lease back; whether it was live (releasing twice is harmless).

        Raises:
            BackendUnavailable: The store cannot be reached.
        """
        ...

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        """Replace a balance (an explicit set through the management API).

        Raises:
            BackendUnavailable: The store cannot be reached.
        """
        ...

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        """Add ``delta`` to the current balance atomically; ``None`` if it would leave 0 … max.

        Raises:
            BackendUnavailable: The store cannot be reached.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
