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
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel

from keyrack.backends.memory import MemoryCache
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import (
    ApiKey,
    KeyRecord,
    KeySecret,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import BackendUnavailable, ConcurrentUpdate, Conflict, DuplicateSlug
from keyrack.services.accounts import AccountService
from keyrack.services.graph import build_services as wire
from keyrack.services.keys import KeyService
from keyrack.services.ports import KeyFilter, LastUsed, Rehash, RootKeyMatch, RootRehash
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


@dataclass
class FakeState:
    """The rows of a fake database; values are frozen, so a copy of the dicts is a snapshot."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    secrets: dict[str, KeySecret] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    root_keys: dict[str, StoredRootKey] = field(default_factory=dict)
    invalidations: dict[int, tuple[str, datetime]] = field(default_factory=dict)

    def copy(self) -> FakeState:
        return FakeState(
            tenants=dict(self.tenants),
            keys=dict(self.keys),
            secrets=dict(self.secrets),
            service_accounts=dict(self.service_accounts),
            root_keys=dict(self.root_keys),
            invalidations=dict(self.invalidations),
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
        )


class FakeDatabase(FakeState):
    """The committed state, plus switches tests flip to simulate trouble.

    ``unavailable`` makes every statement (and commit) raise ``BackendUnavailable``, as the SQL
    unit of work does when the database is down. ``statements`` counts every repository call
    and ``commits`` every successful commit. ``locks`` holds the key rows an open unit of work
    has updated, as PostgreSQL's row locks do until commit or rollback.
    """

    def __init__(self) -> None:
        super().__init__()
        self.unavailable = False
        self.statements = 0
        self.commits = 0
        self.locks: dict[str, object] = {}
        self.last_seq = 0

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

    async def list(self, *, limit: int, after: str | None, only: str | None) -> list[Tenant]:
        self._uow.db.execute()
        rows = sorted(self._uow.state.tenants.values(), key=lambda t: t.id)
        rows = [
            t for t in rows if (after is None or t.id > after) and (only is None or t.id == only)
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

    async def add(self, key: ApiKey, secret: KeySecret) -> None:
        self._uow.db.execute()
        if key.tenant_id != self.tenant_id or secret.tenant_id != self.tenant_id:
            raise ValueError("key belongs to another tenant than this repository")
        if key.tenant_id not in self._uow.state.tenants or key.id in self._uow.state.keys:
            raise _conflict()
        self._uow.state.keys[key.id] = key
        self._check_secret(secret)
        self._uow.state.secrets[secret.id] = secret

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
    )


def tenant_principal(tenant_id: str, *permissions: Permission) -> Principal:
    """A service-account principal scoped to ``tenant_id`` holding ``permissions``."""
    return Principal(
        kind="service_account",
        id="sa_test",
        tenant_id=tenant_id,
        permissions=frozenset(permissions),
    )
