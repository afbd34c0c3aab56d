"""Service accounts, their root keys, bootstrap, and authentication of management callers."""

from __future__ import annotations

import builtins
import logging
from dataclasses import replace
from typing import Final

from keyrack.domain import ids
from keyrack.domain import keys as keyformat
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import RootKey, ServiceAccount
from keyrack.domain.permissions import (
    BOOTSTRAP_PERMISSIONS,
    Permission,
    Principal,
    grant_violations,
)
from keyrack.errors import (
    AuthenticationFailed,
    InvalidInput,
    PermissionDenied,
    RootKeyNotFound,
    ServiceAccountNotFound,
    TenantNotFound,
)
from keyrack.services import inputs
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    RootRehash,
    ServiceAccountRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)
from keyrack.services.writebehind import WriteBehind

logger = logging.getLogger(__name__)

BOOTSTRAP_NAME: Final = "bootstrap"
PRINCIPAL_TTL: Final = 30.0
NEGATIVE_TTL: Final = 2.0


class AccountService:
    """Machine principals of the management API and the root keys they authenticate with."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        peppers: Peppers,
        clock: Clock,
        entropy: Entropy,
        cache: Cache[Principal],
        writes: WriteBehind,
    ) -> None:
        self._uow = uow
        self._writes = writes
        self._peppers = peppers
        self._clock = clock
        self._entropy = entropy
        self._cache = cache

    def _new_id(self, prefix: str, now: float) -> str:
        return ids.new_id(prefix, now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES))

    async def _issue_root_key(
        self, repo: ServiceAccountRepository, account: ServiceAccount, now: float
    ) -> tuple[RootKey, str]:
        plaintext = keyformat.generate(
            keyformat.ROOT_PREFIX, entropy=self._entropy(keyformat.RANDOM_BYTES)
        )
        root_key = RootKey(
            id=self._new_id("rk", now),
            service_account_id=account.id,
            tenant_id=account.tenant_id,
            start=keyformat.display_start(plaintext),
            created_at=to_datetime(now),
            revoked_at=None,
        )
        await repo.add_root_key(
            root_key,
            digest=self._peppers.digest(plaintext),
            pepper_version=self._peppers.current_version,
        )
        return root_key, plaintext

    @staticmethod
    async def _check_tenant(uow: UnitOfWork, tenant_id: str | None) -> None:
        if tenant_id is not None and await uow.tenants.get(tenant_id) is None:
            raise TenantNotFound

    async def bootstrap(self) -> str | None:
        """Create the platform bootstrap account and its root key, unless one is live.

        Returns:
            The new root key (shown once), or ``None`` when a live bootstrap key exists.
        """
        now = self._clock.now()
        async with self._uow() as uow:
            if await uow.root_keys.bootstrap_exists():
                return None
            repo = uow.service_accounts(None)
            account = ServiceAccount(
                id=self._new_id("sa", now),
                tenant_id=None,
                name=BOOTSTRAP_NAME,
                permissions=BOOTSTRAP_PERMISSIONS,
                is_bootstrap=True,
                created_at=to_datetime(now),
            )
            await repo.add(account)
            _, plaintext = await self._issue_root_key(repo, account, now)
            await uow.commit()
        logger.info("bootstrap.created", extra={"service_account_id": account.id})
        return plaintext

    async def create(
        self,
        actor: Principal,
        tenant_id: str | None,
        *,
        name: str,
        permissions: frozenset[Permission],
    ) -> tuple[ServiceAccount, str]:
        """Create a service account with its first root key (shown once).

        Raises:
            PermissionDenied: The caller lacks ``service_accounts.write`` or asked to grant
                more than it holds.
            InvalidInput: A platform-only permission was asked for a tenant account.
        """
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        name = inputs.name(name)
        beyond, wrong_scope = grant_violations(
            actor, permissions, tenant_scoped=tenant_id is not None, in_tenant=tenant_id
        )
        if beyond:
            raise PermissionDenied(
                "cannot grant permissions the caller does not hold: " + ", ".join(sorted(beyond))
            )
        if wrong_scope:
            raise InvalidInput(
                "platform-only permissions cannot be granted to a tenant service account: "
                + ", ".join(sorted(wrong_scope))
            )
        now = self._clock.now()
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.service_accounts(tenant_id)
            account = ServiceAccount(
                id=self._new_id("sa", now),
                tenant_id=tenant_id,
                name=name,
                permissions=permissions,
                is_bootstrap=False,
                created_at=to_datetime(now),
            )
            await repo.add(account)
            _, plaintext = await self._issue_root_key(repo, account, now)
            await uow.commit()
        logger.info("service_account.created", extra={"service_account_id": account.id})
        return account, plaintext

    async def get(self, actor: Principal, tenant_id: str | None, account_id: str) -> ServiceAccount:
        """One service account of the scope.

        Raises:
            ServiceAccountNotFound: No such account in this scope.
        """
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            account = await uow.service_accounts(tenant_id).get(account_id)
        if account is None:
            raise ServiceAccountNotFound
        return account

    async def list(
        self,
        actor: Principal,
        tenant_id: str | None,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[ServiceAccount]:
        """A page of the scope's service accounts."""
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.service_accounts(tenant_id)

            async def fetch(n: int, after: str | None) -> list[ServiceAccount]:
                return await repo.list(limit=n, after=after)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="sa")

    async def list_root_keys(
        self, actor: Principal, tenant_id: str | None, account_id: str
    ) -> builtins.list[RootKey]:
        """The root keys of one account (starts only, never secrets)."""
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.service_accounts(tenant_id)
            if await repo.get(account_id) is None:
                raise ServiceAccountNotFound
            return await repo.list_root_keys(account_id)

    async def add_root_key(
        self, actor: Principal, tenant_id: str | None, account_id: str
    ) -> tuple[RootKey, str]:
        """Issue another root key for an account (shown once).

        Raises:
            ServiceAccountNotFound: No such account in this scope.
            PermissionDenied: The account holds permissions the caller could not grant.
        """
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        now = self._clock.now()
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.service_accounts(tenant_id)
            account = await repo.get(account_id)
            if account is None:
                raise ServiceAccountNotFound
            beyond, _ = grant_violations(
                actor, account.permissions, tenant_scoped=False, in_tenant=tenant_id
            )
            if beyond:
                raise PermissionDenied(
                    "cannot issue a key for an account holding more than the caller"
                )
            root_key, plaintext = await self._issue_root_key(repo, account, now)
            await uow.commit()
        return root_key, plaintext

    async def revoke_root_key(
        self, actor: Principal, tenant_id: str | None, account_id: str, root_key_id: str
    ) -> RootKey:
        """Revoke a root key; it stops authenticating at once in this process.

        Raises:
            RootKeyNotFound: No such root key on this account.
        """
        authorize(actor, Permission.SERVICE_ACCOUNTS_WRITE, tenant_id=tenant_id)
        now = self._clock.now()
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.service_accounts(tenant_id)
            root_key = await repo.get_root_key(account_id, root_key_id)
            if root_key is None:
                raise RootKeyNotFound
            if root_key.revoked_at is not None:
                self._cache.invalidate(root_key_id)
                return root_key
            moment = to_datetime(now)
            await repo.revoke_root_key(root_key_id, at=moment)
            await uow.invalidations.record([root_key_id], at=moment)
            await uow.commit()
        self._cache.invalidate(root_key_id)
        return replace(root_key, revoked_at=moment)

    async def authenticate(self, presented: str) -> Principal:
        """Turn a presented root key into the principal it authenticates.

        Raises:
            AuthenticationFailed: Not a root key, or unknown or revoked.
        """
        if not keyformat.is_root_key(presented) or not keyformat.is_well_formed(presented):
            raise AuthenticationFailed
        digest = self._peppers.digest(presented)
        now = self._clock.now()
        entry = self._cache.get(digest)
        if entry is not None and entry[1] > now:
            principal = entry[0]
        else:
            async with self._uow() as uow:
                match = await uow.root_keys.find(list(self._peppers.all_digests(presented)))
            if match is None:
                principal = None
                self._cache.put(digest, None, owner=None, expires_at=now + NEGATIVE_TTL)
            else:
                keyformat.remember_prefix(presented)
                if match.pepper_version != self._peppers.current_version:
                    self._writes.rehash_root(
                        RootRehash(
                            tenant_id=match.root_key.tenant_id,
                            root_key_id=match.root_key.id,
                            digest=digest,
                            pepper_version=self._peppers.current_version,
                        )
                    )
                account = match.account
                principal = Principal(
                    kind="service_account",
                    id=account.id,
                    tenant_id=account.tenant_id,
                    permissions=account.permissions,
                    may_grant_reveal=account.is_bootstrap,
                )
                self._cache.put(
                    digest, principal, owner=match.root_key.id, expires_at=now + PRINCIPAL_TTL
                )
        if principal is None:
            raise AuthenticationFailed
        return principal
