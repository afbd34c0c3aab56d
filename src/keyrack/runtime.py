"""Wiring: build the engine, caches and services from ``Settings`` (used by every entrypoint).

Nothing here runs at import. The HTTP app, the CLI and the embedded library each call
``open_runtime`` once and ``close`` it on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keyrack.backends.memory import MemoryCache, MemoryLimitStore
from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.backends.sealing import AesGcmSealer
from keyrack.config import Settings, load_secrets
from keyrack.domain.hashing import Peppers
from keyrack.domain.models import KeyRecord
from keyrack.domain.permissions import Principal
from keyrack.services.accounts import AccountService
from keyrack.services.clock import SystemClock, system_entropy
from keyrack.services.credits import CreditsService
from keyrack.services.graph import build_services
from keyrack.services.identities import IdentityService
from keyrack.services.invalidation import CacheInvalidator
from keyrack.services.keys import KeyService
from keyrack.services.limits import ResilientLimits
from keyrack.services.people import PeopleService
from keyrack.services.ports import Clock, Entropy, LimitStore, PasswordHasher, UnitOfWork
from keyrack.services.ratelimits import LimitService
from keyrack.services.rbac import RbacService
from keyrack.services.sessions import SessionService
from keyrack.services.systemkeys import SystemKeyService
from keyrack.services.tenants import TenantService
from keyrack.services.verify import VerifyService
from keyrack.services.writebehind import WriteBehind
from keyrack.store import migrate
from keyrack.store.engine import make_engine
from keyrack.store.uow import SqlUnitOfWork

logger = logging.getLogger(__name__)

_PRUNE_EVERY_SECONDS = 60.0


@dataclass
class Runtime:
    """The services of one process and the resources behind them."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    peppers: Peppers
    tenants: TenantService
    keys: KeyService
    accounts: AccountService
    verifier: VerifyService
    writes: WriteBehind
    key_cache: MemoryCache[KeyRecord]
    flush_interval: float
    invalidator: CacheInvalidator
    poll_interval: float
    limits: LimitStore
    identities: IdentityService
    credits: CreditsService
    rbac: RbacService
    limit_api: LimitService
    people: PeopleService
    auth: SessionService
    system_keys: SystemKeyService
    clock: Clock
    secrets_from_file: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    def uow(self) -> UnitOfWork:
        """A new unit of work on this runtime's database."""
        return SqlUnitOfWork(self.sessions)

    async def ping(self) -> bool:
        """Whether the database answers (for ``/readyz``)."""
        try:
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except Exception:  # noqa: BLE001  # any failure means "not ready"
            return False
        return True

    def start_background(self) -> None:
        """Start the write-behind flush and the invalidation poll (once)."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._flush_forever(), name="keyrack-flush"),
                asyncio.create_task(self._poll_forever(), name="keyrack-invalidations"),
            ]

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.writes.flush()
            except Exception:  # a flush must never kill the loop
                logger.exception("writebehind.flush_error")

    async def _poll_forever(self) -> None:
        polls_per_prune = max(1, int(_PRUNE_EVERY_SECONDS / self.poll_interval))
        polls = 0
        while True:
            await asyncio.sleep(self.poll_interval)
            polls += 1
            try:
                await self.invalidator.poll()
                if polls % polls_per_prune == 0:
                    await self.invalidator.prune()
            except Exception:  # the database may be down; the next poll retries
                logger.warning("invalidation.poll_failed", exc_info=True)

    async def close(self) -> None:
        """Stop the background tasks, flush what is pending, dispose the engine."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.writes.flush()
        finally:
            try:
                await self.limits.close()
            finally:
                await self.engine.dispose()


def limit_store(settings: Settings, clock: Clock) -> LimitStore:
    """The configured limit store: Redis (with the failure policy) or this process's memory.

    Raises:
        MissingDependency: ``KEYRACK_REDIS_URL`` is set but the ``redis`` extra is missing.
    """
    local = MemoryLimitStore(clock.now)
    if settings.redis_url is None:
        return local
    from keyrack.backends.redis import RedisLimitStore  # noqa: PLC0415  # optional extra 'redis'

    return ResilientLimits(RedisLimitStore.from_url(settings.redis_url), local, clock=clock)


async def open_runtime(
    settings: Settings,
    *,
    run_migrations: bool = True,
    clock: Clock | None = None,
    entropy: Entropy | None = None,
    hasher: PasswordHasher | None = None,
) -> Runtime:
    """Build every service from ``settings``; migrate the database first unless told not to.

    Raises:
        ConfigurationError: No peppers are configured, or the URL is unusable.
        MissingDependency: The database driver's extra is not installed.
    """
    secrets = load_secrets(settings)
    peppers = Peppers(secrets.peppers)
    engine = make_engine(settings.database_url)
    if run_migrations:
        await migrate.upgrade(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    key_cache: MemoryCache[KeyRecord] = MemoryCache(settings.cache_size)
    principal_cache: MemoryCache[Principal] = MemoryCache(10_000)
    clock = clock or SystemClock()
    services = build_services(
        uow=uow,
        peppers=peppers,
        clock=clock,
        limits=limit_store(settings, clock),
        hasher=hasher or Argon2PasswordHasher(),
        sealer=AesGcmSealer(secrets.master_keys),
        entropy=entropy or system_entropy,
        key_cache=key_cache,
        principal_cache=principal_cache,
        positive_ttl=settings.cache_ttl_seconds,
        negative_ttl=settings.negative_cache_ttl_seconds,
    )
    await services.invalidator.start()
    return Runtime(
        engine=engine,
        sessions=sessions,
        peppers=peppers,
        tenants=services.tenants,
        keys=services.keys,
        accounts=services.accounts,
        identities=services.identities,
        verifier=services.verifier,
        writes=services.writes,
        key_cache=key_cache,
        flush_interval=settings.flush_interval_seconds,
        invalidator=services.invalidator,
        poll_interval=settings.invalidation_poll_seconds,
        limits=services.limits,
        credits=services.credits,
        limit_api=services.limit_api,
        rbac=services.rbac,
        people=services.people,
        auth=services.sessions,
        system_keys=services.system_keys,
        clock=clock,
        secrets_from_file=secrets.from_file,
    )
