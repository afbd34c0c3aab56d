"""Permissions and roles of a tenant's API keys (DESIGN.md §2 "Permission / role", §11).

A permission is a slug such as ``chat.write`` or ``documents.*`` (the name grammar of
``keyrack.domain.permission_query``); a role is a named bundle of permission slugs. Keys hold
both by name. Key permissions are created in the tenant on first use (by ``resolve_key_grants``,
which ``KeyService`` calls when a key is created or updated, and by role changes); roles must
exist before a key names them.

Every change that alters what a key holds (a role's permissions, a role's name, deleting a role
or a permission) records the affected key ids in the invalidation log in the same transaction
and drops them from this process's verify cache after the commit, as ``KeyService`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Final

from keyrack.domain import ids
from keyrack.domain.models import MAX_NAME_LENGTH, KeyRecord, PermissionDef, Role
from keyrack.domain.permission_query import effective_permissions, is_permission_name
from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import (
    ConcurrentUpdate,
    DuplicatePermission,
    InvalidInput,
    PermissionNotFound,
    RoleNotFound,
    TenantNotFound,
)
from keyrack.services import inputs
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, paginate
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    KeyRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)

logger = logging.getLogger(__name__)

PERMISSION_ID_PREFIX: Final = "perm"
ROLE_ID_PREFIX: Final = "role"
_SHOWN_NAME_LENGTH: Final = 64


class Unset(Enum):
    """The type of ``UNSET``."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET
"""Marks a field a role update leaves as it is (distinct from an explicit ``None``)."""


@dataclass(frozen=True, slots=True)
class NewPermission:
    """A permission to create explicitly (it may also be created by first use)."""

    slug: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class NewRole:
    """A role to create; its permissions are created in the tenant if missing."""

    name: str
    description: str | None = None
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleChanges:
    """A partial update of a role; ``UNSET`` fields stay as they are.

    ``permissions`` replaces the whole set. Renaming a role renames it on every key holding it.
    """

    name: str | Unset = UNSET
    description: str | Unset | None = UNSET
    permissions: tuple[str, ...] | Unset = UNSET


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_NAME_LENGTH else text[:_SHOWN_NAME_LENGTH] + "…"


def check_permission_names(slugs: Iterable[str], *, field: str = "permissions") -> tuple[str, ...]:
    """Validate permission slugs against the name grammar; return them without duplicates.

    Args:
        slugs: Slugs such as ``chat.write``, ``documents.*`` or ``*``.
        field: The request field named in the error.

    Returns:
        The slugs in their first-seen order, each once.

    Raises:
        InvalidInput: A slug is not a permission name (or is over 255 characters), or there
            are more than 1,000; the error names the field and the first bad slug.
    """
    if isinstance(slugs, str):
        raise InvalidInput(f"{field} must be a list of permission names", field=field)
    result = tuple(dict.fromkeys(slugs))
    if len(result) > inputs.MAX_SLUGS:
        raise InvalidInput(f"{field} must hold at most {inputs.MAX_SLUGS} entries", field=field)
    for slug in result:
        if len(slug) > MAX_NAME_LENGTH or not is_permission_name(slug):
            shown = _shown(slug)
            raise InvalidInput(
                f"{field}: {shown!r} is not a permission name: lower-case segments of "
                "a-z, 0-9, '_', ':' and '-' separated by '.', optionally ending in '.*' "
                "(or '*' alone), at most 255 characters",
                field=field,
                value=shown,
            )
    return result


async def resolve_key_grants(
    uow: UnitOfWork,
    tenant_id: str,
    *,
    permissions: tuple[str, ...],
    roles: tuple[str, ...],
    now: datetime,
    new_id: Callable[[str], str],
) -> None:
    """Check the permissions and roles a key is being given, creating missing permissions.

    Call it inside the unit of work that writes the key, after the tenant is known to exist;
    nothing is committed here. Permission names are validated first, then the roles are looked
    up, and only then are missing permissions added to the tenant (so a refused request writes
    nothing even before its rollback). A permission created concurrently by another transaction
    is fine: it exists either way.

    Args:
        uow: The open unit of work of the key change.
        tenant_id: The key's tenant.
        permissions: The key's direct permission slugs (``documents.*`` allowed).
        roles: The names of the roles the key holds.
        now: The creation time of any new permission.
        new_id: Makes a fresh id for an object type prefix (``"perm"``).

    Raises:
        InvalidInput: A permission slug is not a permission name (``field="permissions"``,
            ``value`` the bad slug), or roles do not exist in the tenant (``field="roles"``,
            ``missing`` the unknown names).
    """
    slugs = check_permission_names(permissions)
    wanted_roles = tuple(dict.fromkeys(roles))
    if wanted_roles:
        found = {role.name for role in await uow.roles(tenant_id).by_names(wanted_roles)}
        missing = [name for name in wanted_roles if name not in found]
        if missing:
            raise InvalidInput(
                "roles must exist in the tenant; unknown: "
                + ", ".join(repr(_shown(name)) for name in missing[:10]),
                field="roles",
                missing=missing,
            )
    await _ensure_permissions(uow, tenant_id, slugs, now=now, new_id=new_id)


async def _ensure_permissions(
    uow: UnitOfWork,
    tenant_id: str,
    slugs: Sequence[str],
    *,
    now: datetime,
    new_id: Callable[[str], str],
) -> None:
    """Add the permissions among ``slugs`` that the tenant lacks (already validated)."""
    if not slugs:
        return
    repo = uow.permissions(tenant_id)
    existing = {p.slug for p in await repo.by_slugs(slugs)}
    for slug in slugs:
        if slug in existing:
            continue
        permission = PermissionDef(
            id=new_id(PERMISSION_ID_PREFIX),
            tenant_id=tenant_id,
            slug=slug,
            description=None,
            created_at=now,
        )
        try:
            await repo.add(permission)
        except DuplicatePermission:
            # Another transaction created it since ``by_slugs``: first use is idempotent.
            continue


async def granted_permissions(
    uow: UnitOfWork, tenant_id: str, permissions: Sequence[str], roles: Sequence[str]
) -> frozenset[str]:
    """Every permission a key holds: its direct ones plus those of its roles.

    Meant for the cold verify load (one extra query, and none when the key has no roles). A
    role the key names that no longer exists grants nothing (fail closed).

    Args:
        uow: An open unit of work.
        tenant_id: The key's tenant.
        permissions: The key's direct permission slugs.
        roles: The names of the roles the key holds.

    Returns:
        The union, for ``keyrack.domain.permission_query.evaluate``.
    """
    if not roles:
        return frozenset(permissions)
    found = await uow.roles(tenant_id).by_names(roles)
    return effective_permissions(permissions, {r.name: r.permissions for r in found}, roles)


class RbacService:
    """Management of a tenant's key permissions and roles (``keys.read`` / ``keys.write``)."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        entropy: Entropy,
        cache: Cache[KeyRecord],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._entropy = entropy
        self._cache = cache

    def _new_id(self, prefix: str, now: float) -> str:
        return ids.new_id(prefix, now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES))

    @staticmethod
    async def _check_tenant(uow: UnitOfWork, tenant_id: str) -> None:
        if await uow.tenants.get(tenant_id) is None:
            raise TenantNotFound

    def _invalidate(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            self._cache.invalidate(key_id)

    # -- permissions ---------------------------------------------------------------------------

    async def create_permission(
        self, actor: Principal, tenant_id: str, spec: NewPermission
    ) -> PermissionDef:
        """Create a permission slug in the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            InvalidInput: The slug is not a permission name, or the description is too long.
            DuplicatePermission: The tenant already has this slug.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        (slug,) = check_permission_names([spec.slug], field="slug")
        description = inputs.description(spec.description)
        now = self._clock.now()
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            permission = PermissionDef(
                id=self._new_id(PERMISSION_ID_PREFIX, now),
                tenant_id=tenant_id,
                slug=slug,
                description=description,
                created_at=to_datetime(now),
            )
            await uow.permissions(tenant_id).add(permission)
            await uow.commit()
        logger.info(
            "permission.created", extra={"tenant_id": tenant_id, "permission_id": permission.id}
        )
        return permission

    async def get_permission(
        self, actor: Principal, tenant_id: str, permission_id: str
    ) -> PermissionDef:
        """One permission of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionNotFound: No such permission in this tenant.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            permission = await uow.permissions(tenant_id).get(permission_id)
        if permission is None:
            raise PermissionNotFound
        return permission

    async def list_permissions(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[PermissionDef]:
        """A page of the tenant's permissions, oldest first.

        Raises:
            TenantNotFound: No such tenant for this caller.
            InvalidInput: The limit or cursor is not valid.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.permissions(tenant_id)

            async def fetch(n: int, after: str | None) -> list[PermissionDef]:
                return await repo.list(limit=n, after=after)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix=PERMISSION_ID_PREFIX)

    async def delete_permission(self, actor: Principal, tenant_id: str, permission_id: str) -> None:
        """Delete a permission and take it off every role and every key of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            PermissionNotFound: No such permission in this tenant.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.permissions(tenant_id)
            permission = await repo.get(permission_id)
            if permission is None:
                raise PermissionNotFound
            keys = uow.keys(tenant_id)
            holders = [
                role.name
                for role in await _all_roles(uow, tenant_id)
                if permission.slug in role.permissions
            ]
            affected = dict.fromkeys(await _holders_of(keys, holders))
            await uow.roles(tenant_id).strip_permission(permission.slug)
            affected.update(dict.fromkeys(await keys.strip_permission(permission.slug)))
            await repo.remove(permission_id)
            if affected:
                await uow.invalidations.record(list(affected), at=now)
            await uow.commit()
        self._invalidate(affected)
        logger.info(
            "permission.deleted",
            extra={
                "tenant_id": tenant_id,
                "permission_id": permission_id,
                "keys_affected": len(affected),
            },
        )

    # -- roles ---------------------------------------------------------------------------------

    async def create_role(self, actor: Principal, tenant_id: str, spec: NewRole) -> Role:
        """Create a role; permissions it names that the tenant lacks are created.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            InvalidInput: The name, description or a permission slug is not acceptable.
            DuplicateRole: The tenant already has a role of this name.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        name = inputs.name(spec.name)
        description = inputs.description(spec.description)
        permissions = check_permission_names(spec.permissions)
        now = self._clock.now()
        moment = to_datetime(now)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            await _ensure_permissions(
                uow, tenant_id, permissions, now=moment, new_id=lambda p: self._new_id(p, now)
            )
            role = Role(
                id=self._new_id(ROLE_ID_PREFIX, now),
                tenant_id=tenant_id,
                name=name,
                description=description,
                permissions=permissions,
                created_at=moment,
                updated_at=moment,
            )
            await uow.roles(tenant_id).add(role)
            await uow.commit()
        logger.info("role.created", extra={"tenant_id": tenant_id, "role_id": role.id})
        return role

    async def get_role(self, actor: Principal, tenant_id: str, role_id: str) -> Role:
        """One role of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            RoleNotFound: No such role in this tenant.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            role = await uow.roles(tenant_id).get(role_id)
        if role is None:
            raise RoleNotFound
        return role

    async def list_roles(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Role]:
        """A page of the tenant's roles, oldest first.

        Raises:
            TenantNotFound: No such tenant for this caller.
            InvalidInput: The limit or cursor is not valid.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.roles(tenant_id)

            async def fetch(n: int, after: str | None) -> list[Role]:
                return await repo.list(limit=n, after=after)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix=ROLE_ID_PREFIX)

    async def update_role(
        self, actor: Principal, tenant_id: str, role_id: str, changes: RoleChanges
    ) -> Role:
        """Apply a partial update to a role.

        New permissions are created in the tenant if missing. When the permissions or the name
        change, every key holding the role is dropped from the verify caches; a new name is
        written to those keys too, so they keep the role.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            RoleNotFound: No such role in this tenant.
            InvalidInput: A field is not acceptable.
            DuplicateRole: Another role of the tenant has the new name.
            ConcurrentUpdate: Another change to the role (or to a renamed key) committed first.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        name = changes.name if isinstance(changes.name, Unset) else inputs.name(changes.name)
        description = (
            changes.description
            if isinstance(changes.description, Unset)
            else inputs.description(changes.description)
        )
        permissions = (
            changes.permissions
            if isinstance(changes.permissions, Unset)
            else check_permission_names(changes.permissions)
        )
        now = self._clock.now()
        moment = to_datetime(now)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.roles(tenant_id)
            role = await repo.get(role_id)
            if role is None:
                raise RoleNotFound
            updated = replace(
                role,
                name=role.name if isinstance(name, Unset) else name,
                description=role.description if isinstance(description, Unset) else description,
                permissions=role.permissions if isinstance(permissions, Unset) else permissions,
                updated_at=moment,
                version=role.version + 1,
            )
            await _ensure_permissions(
                uow,
                tenant_id,
                updated.permissions,
                now=moment,
                new_id=lambda p: self._new_id(p, now),
            )
            if not await repo.update(updated, expected_version=role.version):
                raise ConcurrentUpdate
            affected: list[str] = []
            renamed = updated.name != role.name
            if renamed or set(updated.permissions) != set(role.permissions):
                keys = uow.keys(tenant_id)
                affected = await keys.ids_with_role(role.name)
                if renamed:
                    await _rename_role_on_keys(keys, affected, role.name, updated.name, moment)
            if affected:
                await uow.invalidations.record(affected, at=moment)
            await uow.commit()
        self._invalidate(affected)
        logger.info(
            "role.updated",
            extra={"tenant_id": tenant_id, "role_id": role_id, "keys_affected": len(affected)},
        )
        return updated

    async def delete_role(self, actor: Principal, tenant_id: str, role_id: str) -> None:
        """Delete a role and take it off every key of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            RoleNotFound: No such role in this tenant.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        now = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.roles(tenant_id)
            role = await repo.get(role_id)
            if role is None:
                raise RoleNotFound
            affected = await uow.keys(tenant_id).strip_role(role.name)
            await repo.remove(role_id)
            if affected:
                await uow.invalidations.record(affected, at=now)
            await uow.commit()
        self._invalidate(affected)
        logger.info(
            "role.deleted",
            extra={"tenant_id": tenant_id, "role_id": role_id, "keys_affected": len(affected)},
        )


async def _all_roles(uow: UnitOfWork, tenant_id: str) -> list[Role]:
    """Every role of the tenant, page by page."""
    repo = uow.roles(tenant_id)
    roles: list[Role] = []
    after: str | None = None
    while True:
        page = await repo.list(limit=MAX_LIMIT, after=after)
        roles.extend(page)
        if len(page) < MAX_LIMIT:
            return roles
        after = page[-1].id


async def _holders_of(keys: KeyRepository, role_names: Sequence[str]) -> list[str]:
    """Ids of the keys holding any of ``role_names``, each once."""
    found: dict[str, None] = {}
    for name in role_names:
        found.update(dict.fromkeys(await keys.ids_with_role(name)))
    return list(found)


async def _rename_role_on_keys(
    keys: KeyRepository, key_ids: Sequence[str], old: str, new: str, at: datetime
) -> None:
    """Write the role's new name on each key that holds the old one."""
    for key_id in key_ids:
        key = await keys.get(key_id, for_update=True)
        if key is None:  # deleted meanwhile: nothing to rename
            continue
        roles = tuple(dict.fromkeys(new if r == old else r for r in key.roles))
        renamed = replace(key, roles=roles, updated_at=at, version=key.version + 1)
        if not await keys.update(renamed, expected_version=key.version):
            raise ConcurrentUpdate
