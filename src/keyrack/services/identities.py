"""Identities: the platform's own customers inside a tenant, whose limits their keys share.

An identity carries an ``external_id`` (the platform's id of its customer, unique in the
tenant), ``meta``, and optionally named rate limits and a credits balance that every key of
the identity shares. A key's own rate limit of the same name, and a key's own credits, win
over the identity's (``keyrack.domain.limits.build_plan``).

Verify caches each key's record together with its identity's limits, so every change to an
identity records its keys in the invalidation log (in the same transaction) and drops them
from this process's cache after commit, as ``KeyService`` does for one key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from keyrack.domain import ids
from keyrack.domain.credits import Credits
from keyrack.domain.limits import CreditState, identity_slot
from keyrack.domain.models import Identity, JsonObject, KeyRecord, Limits
from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import (
    BackendUnavailable,
    ConcurrentUpdate,
    IdentityNotFound,
    InvalidInput,
    TenantNotFound,
)
from keyrack.services import inputs
from keyrack.services.authz import authorize
from keyrack.services.clock import to_datetime
from keyrack.services.keys import UNSET, _Unset
from keyrack.services.pagination import DEFAULT_LIMIT, Page, paginate
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    IdentityRepository,
    LimitStore,
    UnitOfWork,
    UnitOfWorkFactory,
)

logger = logging.getLogger(__name__)

ID_PREFIX: Final = "idn"
MAX_RATE_LIMITS: Final = 32
"""Named rate limits one identity may carry (the same bound as the wire schema's)."""


@dataclass(frozen=True, slots=True)
class NewIdentity:
    """What a caller asks for when creating an identity.

    Attributes:
        external_id: The platform's own id of its customer, 1-255 characters, unique in the
            tenant.
        meta: JSON returned with every verify of the identity's keys.
        rate_limits: Named limits shared by every key of the identity; names distinct.
        credits: A balance shared by the identity's keys (``remaining`` and ``refill``; its
            ``refilled_at_ms`` is replaced by the creation time), or ``None``.
    """

    external_id: str
    meta: JsonObject = field(default_factory=dict)
    rate_limits: tuple[RateLimit, ...] = ()
    credits: Credits | None = None


@dataclass(frozen=True, slots=True)
class IdentityChanges:
    """A partial update; ``UNSET`` fields stay as they are.

    ``credits=None`` removes the identity's credits; ``credits=Credits(...)`` replaces both the
    configuration and the balance (an explicit set, which wins over any counter in flight).
    ``rate_limits`` replaces the whole list (``()`` removes them all).
    """

    external_id: str | _Unset = UNSET
    meta: JsonObject | _Unset = UNSET
    rate_limits: tuple[RateLimit, ...] | _Unset = UNSET
    credits: Credits | _Unset | None = UNSET


def _rate_limits(limits: Iterable[RateLimit]) -> tuple[RateLimit, ...]:
    """Bound the number of limits and require distinct names.

    Raises:
        InvalidInput: Too many limits, or two with the same name.
    """
    result = tuple(limits)
    if len(result) > MAX_RATE_LIMITS:
        raise InvalidInput(
            f"an identity holds at most {MAX_RATE_LIMITS} rate limits", field="rate_limits"
        )
    if len({limit.name for limit in result}) != len(result):
        raise InvalidInput("rate limit names must be distinct", field="rate_limits")
    return result


def _external_id(value: str) -> str:
    return inputs.name(value, field="external_id")


def _credits_as_set(credits: Credits | None, now_ms: int) -> Credits | None:
    """The credits as an explicit set at ``now_ms`` (the next refill is the first after it)."""
    if credits is None:
        return None
    return Credits(credits.remaining, credits.refill, now_ms)


class IdentityService:
    """Management of a tenant's identities (permissions ``keys.read`` / ``keys.write``)."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        entropy: Entropy,
        cache: Cache[KeyRecord],
        limits: LimitStore,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._entropy = entropy
        self._cache = cache
        self._limits = limits

    @staticmethod
    async def _check_tenant(uow: UnitOfWork, tenant_id: str) -> None:
        if await uow.tenants.get(tenant_id) is None:
            raise TenantNotFound

    @staticmethod
    async def _existing(repo: IdentityRepository, identity_id: str) -> Identity:
        identity = await repo.get(identity_id)
        if identity is None:
            raise IdentityNotFound
        return identity

    async def _push_credits(self, identity: Identity) -> None:
        """Hand an explicitly set balance to the limit store, which is authoritative.

        The committed snapshot carries a newer ``credits_version`` than any counter the store
        holds, so if the store cannot be reached now, the next verify seeds the balance from
        the snapshot anyway: the failure is logged, not raised after a successful commit.
        """
        credits = identity.limits.credits
        if credits is None or credits.remaining is None:
            return
        state = CreditState(
            credits.remaining, credits.refilled_at_ms, identity.limits.credits_version
        )
        try:
            await self._limits.set_credits(identity.tenant_id, identity_slot(identity.id), state)
        except BackendUnavailable:
            logger.warning(
                "identity.credits_push_failed",
                extra={"tenant_id": identity.tenant_id, "identity_id": identity.id},
            )

    async def create(self, actor: Principal, tenant_id: str, spec: NewIdentity) -> Identity:
        """Create an identity.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            InvalidInput: A value is out of bounds, or two rate limits share a name.
            DuplicateExternalId: The tenant already has an identity with this ``external_id``.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        now = self._clock.now()
        now_ms = int(now * 1000)
        external_id = _external_id(spec.external_id)
        meta = inputs.meta(spec.meta)
        rate_limits = _rate_limits(spec.rate_limits)
        created = to_datetime(now)
        identity = Identity(
            id=ids.new_id(ID_PREFIX, now_ms=now_ms, entropy=self._entropy(ids.ENTROPY_BYTES)),
            tenant_id=tenant_id,
            external_id=external_id,
            meta=meta,
            limits=Limits(
                rate_limits=rate_limits,
                credits=_credits_as_set(spec.credits, now_ms),
                credits_version=0,
            ),
            created_at=created,
            updated_at=created,
        )
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            await uow.identities(tenant_id).add(identity)
            await uow.commit()
        logger.info("identity.created", extra={"tenant_id": tenant_id, "identity_id": identity.id})
        await self._push_credits(identity)
        return identity

    async def get(self, actor: Principal, tenant_id: str, identity_id: str) -> Identity:
        """One identity of the tenant.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.read``.
            IdentityNotFound: No such identity in this tenant.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            return await self._existing(uow.identities(tenant_id), identity_id)

    async def list(
        self,
        actor: Principal,
        tenant_id: str,
        *,
        external_id: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Identity]:
        """A page of the tenant's identities, oldest first; ``external_id`` finds one.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.read``.
            InvalidInput: A bad page size, cursor or ``external_id``.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        wanted = None if external_id is None else _external_id(external_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.identities(tenant_id)

            async def fetch(n: int, after: str | None) -> list[Identity]:
                return await repo.list(limit=n, after=after, external_id=wanted)

            return await paginate(fetch, limit=limit, cursor=cursor, id_prefix=ID_PREFIX)

    async def update(
        self, actor: Principal, tenant_id: str, identity_id: str, changes: IdentityChanges
    ) -> Identity:
        """Apply a partial update; the identity's keys see it on their next verify.

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            IdentityNotFound: No such identity in this tenant.
            InvalidInput: A value is out of bounds, or two rate limits share a name.
            DuplicateExternalId: Another identity of the tenant has this ``external_id``.
            ConcurrentUpdate: Another change to the identity committed first.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        now = self._clock.now()
        now_ms = int(now * 1000)
        external_id = (
            changes.external_id
            if isinstance(changes.external_id, _Unset)
            else _external_id(changes.external_id)
        )
        meta = changes.meta if isinstance(changes.meta, _Unset) else inputs.meta(changes.meta)
        rate_limits = (
            changes.rate_limits
            if isinstance(changes.rate_limits, _Unset)
            else _rate_limits(changes.rate_limits)
        )
        credits_set = not isinstance(changes.credits, _Unset)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            repo = uow.identities(tenant_id)
            identity = await self._existing(repo, identity_id)
            limits = identity.limits
            if not isinstance(rate_limits, _Unset):
                limits = replace(limits, rate_limits=rate_limits)
            if not isinstance(changes.credits, _Unset):
                limits = replace(
                    limits,
                    credits=_credits_as_set(changes.credits, now_ms),
                    credits_version=limits.credits_version + 1,
                )
            moment = to_datetime(now)
            updated = replace(
                identity,
                external_id=identity.external_id
                if isinstance(external_id, _Unset)
                else external_id,
                meta=identity.meta if isinstance(meta, _Unset) else meta,
                limits=limits,
                updated_at=moment,
                version=identity.version + 1,
            )
            if not await repo.update(updated, expected_version=identity.version):
                raise ConcurrentUpdate
            if credits_set:
                credits = limits.credits
                await repo.write_credits(
                    identity_id,
                    remaining=None if credits is None else credits.remaining,
                    refilled_at_ms=now_ms,
                    version=limits.credits_version,
                )
            key_ids = await uow.keys(tenant_id).ids_with_identity(identity_id)
            if key_ids:
                await uow.invalidations.record(key_ids, at=moment)
            await uow.commit()
        self._invalidate(key_ids)
        logger.info("identity.updated", extra={"tenant_id": tenant_id, "identity_id": identity_id})
        if credits_set:
            await self._push_credits(updated)
        return updated

    async def delete(self, actor: Principal, tenant_id: str, identity_id: str) -> None:
        """Delete an identity; its keys stay, without an identity (and its shared limits).

        Raises:
            TenantNotFound: No such tenant for this caller.
            PermissionDenied: The caller lacks ``keys.write``.
            IdentityNotFound: No such identity in this tenant.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        async with self._uow() as uow:
            await self._check_tenant(uow, tenant_id)
            key_ids = await uow.keys(tenant_id).detach_identity(identity_id)
            if not await uow.identities(tenant_id).remove(identity_id):
                raise IdentityNotFound
            if key_ids:
                await uow.invalidations.record(key_ids, at=to_datetime(self._clock.now()))
            await uow.commit()
        self._invalidate(key_ids)
        logger.info("identity.deleted", extra={"tenant_id": tenant_id, "identity_id": identity_id})

    def _invalidate(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            self._cache.invalidate(key_id)
