"""System keys: API keys a trusted service gets or creates on behalf of a user (DESIGN.md §2, §11).

``PUT …/users/{user_id}/system-keys/{name}`` is idempotent: the first call creates the key, every
later call (also a concurrent one) returns the same key *and the same secret*. So a system key's
plaintext is kept, sealed (``ports.SecretSealer``) and bound to its tenant and key id; each
return of it is audited as ``key.revealed``. System keys are hidden from their owner, never
expire unless given an expiry, and are rotated or deleted only here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from keyrack.domain import ids
from keyrack.domain.audit import Ref
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import ApiKey, JsonObject, KeyRecord, KeyStatus
from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import (
    Conflict,
    InvalidInput,
    KeyNotFound,
    NotAMember,
    TenantNotFound,
    UserNotFound,
)
from keyrack.services import inputs
from keyrack.services.audit import event
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.keys import new_secret
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    SecretSealer,
    UnitOfWork,
    UnitOfWorkFactory,
)
from keyrack.services.rbac import resolve_key_grants

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SystemKeySpec:
    """What a new system key gets; ignored when the key exists already."""

    description: str | None = None
    expires_at: datetime | None = None
    meta: JsonObject = field(default_factory=dict)
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SystemKeyResult:
    """The key, its secret (every time), and whether this call created it."""

    key: ApiKey
    secret: str
    created: bool

    def __repr__(self) -> str:
        return f"SystemKeyResult(key={self.key!r}, created={self.created!r})"


class SystemKeyService:
    """Get-or-create and delete of system keys (``system_keys.manage``)."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        peppers: Peppers,
        clock: Clock,
        entropy: Entropy,
        sealer: SecretSealer,
        cache: Cache[KeyRecord],
    ) -> None:
        self._uow = uow
        self._peppers = peppers
        self._clock = clock
        self._entropy = entropy
        self._sealer = sealer
        self._cache = cache

    def _new_id(self, prefix: str, now: float) -> str:
        return ids.new_id(prefix, now_ms=int(now * 1000), entropy=self._entropy(ids.ENTROPY_BYTES))

    @staticmethod
    async def _check_owner(uow: UnitOfWork, tenant_id: str, user_id: str) -> str:
        tenant = await uow.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound
        if await uow.users.get(user_id) is None:
            raise UserNotFound
        if await uow.memberships(tenant_id).get(user_id) is None:
            raise NotAMember
        return tenant.key_prefix

    async def put(
        self,
        actor: Principal,
        tenant_id: str,
        user_id: str,
        name: str,
        spec: SystemKeySpec | None = None,
    ) -> SystemKeyResult:
        """Return user ``user_id``'s system key ``name``, creating it on first use.

        Raises:
            UserNotFound: No such user.
            NotAMember: The user is not a member of the tenant.
            PermissionDenied: The caller lacks ``system_keys.manage`` for the tenant.
            InvalidInput: A bad name, or an ``expires_at`` in the past.
        """
        authorize(actor, Permission.SYSTEM_KEYS_MANAGE, tenant_id=tenant_id)
        name = inputs.name(name)
        spec = spec or SystemKeySpec()
        now = self._clock.now()
        if spec.expires_at is not None and spec.expires_at.timestamp() <= now:
            raise InvalidInput("expires_at must be in the future")
        spec = SystemKeySpec(
            description=inputs.description(spec.description),
            expires_at=spec.expires_at,
            meta=inputs.meta(spec.meta),
            permissions=inputs.slugs(spec.permissions, field="permissions"),
            roles=inputs.slugs(spec.roles, field="roles"),
        )
        found = await self._reveal_existing(actor, tenant_id, user_id, name)
        if found is not None:
            return found
        try:
            return await self._create(actor, tenant_id, user_id, name, spec=spec, now=now)
        except Conflict:
            # A concurrent PUT created it first: answer with that key, as a repeat would.
            found = await self._reveal_existing(actor, tenant_id, user_id, name)
            if found is None:
                raise
            return found

    async def _reveal_existing(
        self, actor: Principal, tenant_id: str, user_id: str, name: str
    ) -> SystemKeyResult | None:
        async with self._uow() as uow:
            await self._check_owner(uow, tenant_id, user_id)
            repo = uow.keys(tenant_id)
            key = await repo.system_key(user_id, name)
            if key is None:
                return None
            sealed = await repo.sealed_secret(key.id)
            if sealed is None:
                raise KeyNotFound  # a system key always has its sealed secret; fail closed
            secret = self._sealer.open(sealed, tenant_id=tenant_id, object_id=key.id)
            await uow.audit.record(
                event(
                    actor,
                    "key.revealed",
                    tenant_id=tenant_id,
                    target=Ref("key", key.id),
                    at=to_datetime(self._clock.now()),
                )
            )
            await uow.commit()
        return SystemKeyResult(key, secret, created=False)

    async def _create(
        self,
        actor: Principal,
        tenant_id: str,
        user_id: str,
        name: str,
        *,
        spec: SystemKeySpec,
        now: float,
    ) -> SystemKeyResult:
        created = to_datetime(now)
        async with self._uow() as uow:
            prefix = await self._check_owner(uow, tenant_id, user_id)
            await resolve_key_grants(
                uow,
                tenant_id,
                permissions=spec.permissions,
                roles=spec.roles,
                now=created,
                new_id=lambda prefix: self._new_id(prefix, now),
            )
            key_id = self._new_id("key", now)
            secret, plaintext = new_secret(
                self._peppers,
                self._entropy,
                key_id=key_id,
                tenant_id=tenant_id,
                prefix=prefix,
                secret_id=self._new_id("sec", now),
                now=now,
            )
            key = ApiKey(
                id=key_id,
                tenant_id=tenant_id,
                name=name,
                description=spec.description,
                start=secret.start,
                status=KeyStatus.ACTIVE,
                expires_at=spec.expires_at,
                owner_id=user_id,
                identity_id=None,
                meta=spec.meta,
                permissions=spec.permissions,
                roles=spec.roles,
                system=True,
                recoverable=True,
                created_at=created,
                updated_at=created,
                last_used_at=None,
            )
            sealed = self._sealer.seal(plaintext, tenant_id=tenant_id, object_id=key_id)
            await uow.keys(tenant_id).add(key, secret, sealed=sealed)
            await uow.audit.record(
                event(
                    actor,
                    "key.created",
                    tenant_id=tenant_id,
                    target=Ref("key", key_id),
                    at=created,
                    changed=("system",),
                )
            )
            await uow.commit()
        logger.info("system_key.created", extra={"tenant_id": tenant_id, "key_id": key_id})
        return SystemKeyResult(key, plaintext, created=True)

    async def delete(self, actor: Principal, tenant_id: str, user_id: str, name: str) -> None:
        """Delete user ``user_id``'s system key ``name``; verify then answers ``NOT_FOUND``.

        Raises:
            UserNotFound: No such user.
            NotAMember: The user is not a member of the tenant.
            KeyNotFound: The user has no system key of that name.
        """
        authorize(actor, Permission.SYSTEM_KEYS_MANAGE, tenant_id=tenant_id)
        name = inputs.name(name)
        moment = to_datetime(self._clock.now())
        async with self._uow() as uow:
            await self._check_owner(uow, tenant_id, user_id)
            repo = uow.keys(tenant_id)
            key = await repo.system_key(user_id, name)
            if key is None or not await repo.remove(key.id):
                raise KeyNotFound
            await uow.invalidations.record([key.id], at=moment)
            await uow.audit.record(
                event(
                    actor,
                    "key.deleted",
                    tenant_id=tenant_id,
                    target=Ref("key", key.id),
                    at=moment,
                )
            )
            await uow.commit()
        self._cache.invalidate(key.id)
