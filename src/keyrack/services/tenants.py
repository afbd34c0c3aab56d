"""Tenants: create, read, list, update, delete."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from keyrack.domain import ids
from keyrack.domain import keys as keyformat
from keyrack.domain.models import KeyRecord, Tenant
from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.validation import check_slug, slugify
from keyrack.errors import InvalidInput, TenantNotFound
from keyrack.services import inputs
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.invalidation import EVERYTHING
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import Cache, Clock, Entropy, UnitOfWorkFactory

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """A partial update of a tenant; ``None`` leaves a field as it is."""

    name: str | None = None
    slug: str | None = None
    key_prefix: str | None = None


class TenantService:
    """Tenant management; creating and deleting tenants is a platform action."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        entropy: Entropy,
        key_cache: Cache[KeyRecord],
        principal_cache: Cache[Principal],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._entropy = entropy
        self._key_cache = key_cache
        self._principal_cache = principal_cache

    @staticmethod
    def _check_prefix(prefix: str) -> str:
        if not keyformat.is_valid_prefix(prefix):
            raise InvalidInput(
                "key_prefix must match [a-z][a-z0-9]{1,15} with an optional _env part "
                "(e.g. 'sk' or 'sk_live'), and 'krroot' is reserved"
            )
        return prefix

    async def create(
        self,
        actor: Principal,
        *,
        name: str,
        slug: str | None = None,
        key_prefix: str | None = None,
    ) -> Tenant:
        """Create a tenant; the slug defaults to one derived from the name.

        Raises:
            PermissionDenied: The caller is not platform-scoped with ``tenants.write``.
            DuplicateSlug: The slug is taken.
            InvalidInput: The prefix is invalid or no slug can be derived from the name.
        """
        authorize(actor, Permission.TENANTS_WRITE, tenant_id=None)
        name = inputs.name(name)
        prefix = self._check_prefix(key_prefix or keyformat.DEFAULT_PREFIX)
        chosen_slug = inputs.checked(check_slug, slug) if slug is not None else slugify(name)
        if not chosen_slug:
            raise InvalidInput("no slug can be derived from this name; pass one")
        now = self._clock.now()
        moment = to_datetime(now)
        tenant = Tenant(
            id=ids.new_id("ten", now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES)),
            name=name,
            slug=chosen_slug,
            key_prefix=prefix,
            created_at=moment,
            updated_at=moment,
        )
        async with self._uow() as uow:
            await uow.tenants.add(tenant)
            await uow.commit()
        logger.info("tenant.created", extra={"tenant_id": tenant.id})
        return tenant

    async def get(self, actor: Principal, tenant_id: str) -> Tenant:
        """One tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
        """
        authorize(actor, Permission.TENANTS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            tenant = await uow.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound
        return tenant

    async def list(
        self, actor: Principal, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[Tenant]:
        """A page of tenants: all for a platform caller, else the caller's own.

        A tenant-scoped service account sees its tenant; a user sees the tenants it is a
        member of (every role may read its own tenant).
        """
        among: list[str] | None
        if actor.is_user and not actor.is_platform:
            among = [tenant_id for tenant_id, _ in actor.memberships]
        else:
            authorize(actor, Permission.TENANTS_READ, tenant_id=actor.tenant_id)
            among = None if actor.tenant_id is None else [actor.tenant_id]
        async with self._uow() as uow:

            async def fetch(n: int, after: str | None) -> list[Tenant]:
                return await uow.tenants.list(limit=n, after=after, among=among)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix="ten")

    async def update(self, actor: Principal, tenant_id: str, changes: TenantChanges) -> Tenant:
        """Rename a tenant or change its slug or key prefix (for keys created afterwards).

        Raises:
            TenantNotFound: No such tenant for this caller.
            DuplicateSlug: The new slug is taken.
        """
        authorize(actor, Permission.TENANTS_WRITE, tenant_id=tenant_id)
        if changes.key_prefix is not None:
            self._check_prefix(changes.key_prefix)
        if changes.name is not None:
            inputs.name(changes.name)
        if changes.slug is not None:
            inputs.checked(check_slug, changes.slug)
        async with self._uow() as uow:
            tenant = await uow.tenants.get(tenant_id)
            if tenant is None:
                raise TenantNotFound
            updated = replace(
                tenant,
                name=changes.name or tenant.name,
                slug=changes.slug or tenant.slug,
                key_prefix=changes.key_prefix or tenant.key_prefix,
                updated_at=to_datetime(self._clock.now()),
            )
            await uow.tenants.update(updated)
            await uow.commit()
        return updated

    async def delete(self, actor: Principal, tenant_id: str) -> None:
        """Delete a tenant with its keys and service accounts.

        Raises:
            PermissionDenied: The caller is not platform-scoped with ``tenants.write``.
            TenantNotFound: No such tenant.
        """
        authorize(actor, Permission.TENANTS_WRITE, tenant_id=None)
        async with self._uow() as uow:
            if not await uow.tenants.remove(tenant_id):
                raise TenantNotFound
            await uow.invalidations.record([EVERYTHING], at=to_datetime(self._clock.now()))
            await uow.commit()
        # A tenant's keys and root keys are many and rarely deleted: drop whole caches.
        self._key_cache.clear()
        self._principal_cache.clear()
        logger.info("tenant.deleted", extra={"tenant_id": tenant_id})
