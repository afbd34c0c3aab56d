"""The service graph: every use case wired to the same ports, caches and buffers.

Entrypoints (``keyrack.runtime``) build it over the SQL store; tests build it over fakes. Both
get exactly the same wiring from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyrack.domain.hashing import Peppers
from keyrack.domain.models import KeyRecord
from keyrack.domain.permissions import Principal
from keyrack.services.accounts import AccountService
from keyrack.services.credits import CreditsService
from keyrack.services.identities import IdentityService
from keyrack.services.invalidation import CacheInvalidator
from keyrack.services.keys import KeyService
from keyrack.services.people import PeopleService
from keyrack.services.ports import (
    Cache,
    Clock,
    Entropy,
    LimitStore,
    PasswordHasher,
    SecretSealer,
    UnitOfWorkFactory,
)
from keyrack.services.ratelimits import LimitService
from keyrack.services.rbac import RbacService
from keyrack.services.sessions import SessionService
from keyrack.services.systemkeys import SystemKeyService
from keyrack.services.tenants import TenantService
from keyrack.services.verify import VerifyService
from keyrack.services.writebehind import WriteBehind


@dataclass(frozen=True, slots=True)
class Services:
    """The use cases of one process, sharing caches and the write-behind buffer."""

    tenants: TenantService
    keys: KeyService
    accounts: AccountService
    verifier: VerifyService
    writes: WriteBehind
    invalidator: CacheInvalidator
    limits: LimitStore
    credits: CreditsService
    limit_api: LimitService
    identities: IdentityService
    rbac: RbacService
    people: PeopleService
    sessions: SessionService
    system_keys: SystemKeyService


def build_services(
    *,
    uow: UnitOfWorkFactory,
    peppers: Peppers,
    clock: Clock,
    entropy: Entropy,
    key_cache: Cache[KeyRecord],
    principal_cache: Cache[Principal],
    limits: LimitStore,
    hasher: PasswordHasher,
    sealer: SecretSealer,
    positive_ttl: float = 30.0,
    negative_ttl: float = 2.0,
    stale_if_error: float = 300.0,
) -> Services:
    """Wire every service to the given ports and caches."""
    writes = WriteBehind(uow)
    return Services(
        tenants=TenantService(
            uow=uow,
            clock=clock,
            entropy=entropy,
            key_cache=key_cache,
            principal_cache=principal_cache,
        ),
        keys=KeyService(
            uow=uow,
            peppers=peppers,
            clock=clock,
            entropy=entropy,
            cache=key_cache,
            limits=limits,
        ),
        accounts=AccountService(
            uow=uow,
            peppers=peppers,
            clock=clock,
            entropy=entropy,
            cache=principal_cache,
            writes=writes,
        ),
        verifier=VerifyService(
            uow=uow,
            cache=key_cache,
            peppers=peppers,
            clock=clock,
            writes=writes,
            limits=limits,
            entropy=entropy,
            positive_ttl=positive_ttl,
            negative_ttl=negative_ttl,
            stale_if_error=stale_if_error,
        ),
        writes=writes,
        invalidator=CacheInvalidator(uow=uow, caches=[key_cache, principal_cache], clock=clock),
        limits=limits,
        credits=CreditsService(uow=uow, clock=clock, limits=limits, cache=key_cache),
        limit_api=LimitService(uow=uow, limits=limits),
        identities=IdentityService(
            uow=uow, clock=clock, entropy=entropy, cache=key_cache, limits=limits
        ),
        rbac=RbacService(uow=uow, clock=clock, entropy=entropy, cache=key_cache),
        people=PeopleService(uow=uow, clock=clock, entropy=entropy, peppers=peppers, hasher=hasher),
        sessions=SessionService(
            uow=uow, clock=clock, entropy=entropy, peppers=peppers, hasher=hasher, limits=limits
        ),
        system_keys=SystemKeyService(
            uow=uow,
            peppers=peppers,
            clock=clock,
            entropy=entropy,
            sealer=sealer,
            cache=key_cache,
        ),
    )
