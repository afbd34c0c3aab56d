"""Credits balances of keys and identities: read live, set, increment, decrement.

The limit store holds the live balance (verify spends from it); the database holds a snapshot
and a *version*. A ``set`` is an explicit new balance: it bumps the version in the database in
the same transaction that records the cache invalidation, then replaces the store's counter, so
no older counter or snapshot can undo it. ``increment`` and ``decrement`` change the live
counter atomically in the store (a decrement below zero changes nothing and answers 409), then
write the resulting snapshot with the same version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Literal

from keyrack.domain import credits as creditlib
from keyrack.domain.credits import Credits, Refill
from keyrack.domain.limits import (
    NEVER,
    CreditCharge,
    CreditState,
    LimitRequest,
    identity_slot,
    key_slot,
)
from keyrack.domain.models import ApiKey, Identity, KeyRecord, Limits
from keyrack.domain.permissions import Permission, Principal
from keyrack.errors import (
    ConcurrentUpdate,
    IdentityNotFound,
    InsufficientCredits,
    InvalidInput,
    KeyNotFound,
    TenantNotFound,
)
from keyrack.services.authz import authorize
from keyrack.services.ports import Cache, Clock, LimitStore, UnitOfWork, UnitOfWorkFactory

CreditsOp = Literal["set", "increment", "decrement"]
_MAX: Final = creditlib.MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Balance:
    """A balance as it stands now (refills applied): ``remaining`` is ``None`` when unlimited."""

    remaining: int | None
    refill: Refill


def _boundary(refill: Refill, now_ms: int) -> int:
    boundary = creditlib.refill_boundary_ms(refill, datetime.fromtimestamp(now_ms / 1000, UTC))
    return NEVER if boundary is None else boundary


def _charge(slot: str, limits: Limits, now_ms: int) -> CreditCharge | None:
    credits = limits.credits
    if credits is None or credits.remaining is None:
        return None
    return CreditCharge(
        slot,
        credits.remaining,
        credits.refilled_at_ms,
        limits.credits_version,
        credits.refill.amount,
        _boundary(credits.refill, now_ms),
        0,
    )


class CreditsService:
    """Reads and changes the credits of a key (``key_…``) or an identity (``idn_…``)."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limits: LimitStore,
        cache: Cache[KeyRecord],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._cache = cache

    @staticmethod
    async def _load(uow: UnitOfWork, tenant_id: str, owner_id: str) -> ApiKey | Identity:
        if await uow.tenants.get(tenant_id) is None:
            raise TenantNotFound
        if owner_id.startswith("idn_"):
            identity = await uow.identities(tenant_id).get(owner_id)
            if identity is None:
                raise IdentityNotFound
            return identity
        key = await uow.keys(tenant_id).get(owner_id)
        if key is None:
            raise KeyNotFound
        return key

    @staticmethod
    def _slot(owner: ApiKey | Identity) -> str:
        return identity_slot(owner.id) if isinstance(owner, Identity) else key_slot(owner.id)

    async def get(self, actor: Principal, tenant_id: str, owner_id: str) -> Balance:
        """The live balance of a key or identity.

        Raises:
            TenantNotFound: No such tenant for this caller.
            KeyNotFound: No such key in the tenant.
            IdentityNotFound: No such identity in the tenant.
            BackendUnavailable: The limit store or the database is down.
        """
        authorize(actor, Permission.KEYS_READ, tenant_id=tenant_id)
        async with self._uow() as uow:
            owner = await self._load(uow, tenant_id, owner_id)
        now_ms = int(self._clock.now() * 1000)
        charge = _charge(self._slot(owner), owner.limits, now_ms)
        credits = owner.limits.credits
        refill = Refill() if credits is None else credits.refill
        if charge is None:
            return Balance(None, refill)
        answer = await self._limits.apply(LimitRequest(tenant_id, credits=charge), dry_run=True)
        remaining = None if answer.credits is None else answer.credits.remaining
        return Balance(remaining, refill)

    async def change(
        self,
        actor: Principal,
        tenant_id: str,
        owner_id: str,
        *,
        op: CreditsOp,
        amount: int | None,
    ) -> Balance:
        """Set, increment or decrement a balance.

        Args:
            actor: The caller.
            tenant_id: The tenant of the key or identity.
            owner_id: A key id or an identity id.
            op: ``set`` (``amount`` ``None`` makes it unlimited), ``increment`` or
                ``decrement``.
            amount: Units, 0 … 2**53 - 1.

        Raises:
            InvalidInput: The amount is out of bounds, or an increment or decrement targets an
                unlimited balance.
            InsufficientCredits: A decrement larger than the balance (nothing changes).
            KeyNotFound: No such key in the tenant.
            IdentityNotFound: No such identity in the tenant.
            BackendUnavailable: The limit store or the database is down.
        """
        authorize(actor, Permission.KEYS_WRITE, tenant_id=tenant_id)
        if amount is not None and (type(amount) is not int or not 0 <= amount <= _MAX):
            raise InvalidInput(f"amount must be an integer 0 … {_MAX}", field="amount")
        if op != "set" and amount is None:
            raise InvalidInput(f"{op} needs an amount", field="amount")
        now_ms = int(self._clock.now() * 1000)
        if op == "set":
            return await self._set(tenant_id, owner_id, amount, now_ms)
        async with self._uow() as uow:
            owner = await self._load(uow, tenant_id, owner_id)
        slot = self._slot(owner)
        charge = _charge(slot, owner.limits, now_ms)
        credits = owner.limits.credits
        if charge is None or credits is None or amount is None:
            raise InvalidInput(
                "this balance is unlimited: set a balance before changing it", field="op"
            )
        delta = amount if op == "increment" else -amount
        state = await self._limits.adjust_credits(tenant_id, charge, delta)
        if state is None:
            if delta < 0:
                raise InsufficientCredits
            raise InvalidInput(f"the balance cannot pass {_MAX}", field="amount")
        async with self._uow() as uow:
            await self._write(uow, tenant_id, owner, state)
            await uow.commit()
        return Balance(state.remaining, credits.refill)

    async def _set(self, tenant_id: str, owner_id: str, amount: int | None, now_ms: int) -> Balance:
        moment = datetime.fromtimestamp(now_ms / 1000, UTC)
        async with self._uow() as uow:
            owner = await self._load(uow, tenant_id, owner_id)
            limits = owner.limits
            refill = Refill() if limits.credits is None else limits.credits.refill
            version = limits.credits_version + 1
            new_limits = replace(
                limits, credits=Credits(amount, refill, now_ms), credits_version=version
            )
            if isinstance(owner, Identity):
                written = await uow.identities(tenant_id).update(
                    replace(owner, limits=new_limits, updated_at=moment, version=owner.version + 1),
                    expected_version=owner.version,
                )
                changed = await uow.keys(tenant_id).ids_with_identity(owner.id)
            else:
                written = await uow.keys(tenant_id).update(
                    replace(owner, limits=new_limits, updated_at=moment, version=owner.version + 1),
                    expected_version=owner.version,
                )
                changed = [owner.id]
            if not written:
                raise ConcurrentUpdate
            await uow.invalidations.record(changed, at=moment)
            await uow.commit()
        for key_id in changed:
            self._cache.invalidate(key_id)
        if amount is not None:
            await self._limits.set_credits(
                tenant_id, self._slot(owner), CreditState(amount, now_ms, version)
            )
        return Balance(amount, refill)

    @staticmethod
    async def _write(
        uow: UnitOfWork, tenant_id: str, owner: ApiKey | Identity, state: CreditState
    ) -> None:
        """Store the live balance's snapshot (same version: not an explicit set)."""
        repo = uow.identities(tenant_id) if isinstance(owner, Identity) else uow.keys(tenant_id)
        await repo.write_credits(
            owner.id,
            remaining=state.remaining,
            refilled_at_ms=state.refilled_at_ms,
            version=state.version,
        )
