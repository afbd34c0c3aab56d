"""Key rotation on real databases: concurrent rotations race, grace periods end on time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import TracebackType
from typing import Self

import pytest
from sqlalchemy import select

from keyrack.domain.models import ApiKey
from keyrack.domain.verification import Outcome
from keyrack.errors import ConcurrentUpdate
from keyrack.runtime import Runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import system_entropy, to_datetime
from keyrack.services.keys import KeyService, NewKey
from keyrack.services.ports import KeyRepository, UnitOfWork
from keyrack.store.tables import KeySecretRow
from keyrack.store.uow import SqlUnitOfWork
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

RACERS = 6


async def _new_key(runtime: Runtime, **spec: object) -> tuple[ApiKey, str]:
    tenant = await runtime.tenants.create(OPERATOR, name="Acme")
    return await runtime.keys.create(OPERATOR, tenant.id, NewKey(name="k", **spec))  # type: ignore[arg-type]  # test-only overrides


async def _outcome(runtime: Runtime, secret: str) -> Outcome:
    return (await runtime.verifier.verify(secret)).outcome


async def _secret_count(runtime: Runtime, key_id: str) -> int:
    async with runtime.uow() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        rows = await uow.session.scalars(
            select(KeySecretRow.id).where(KeySecretRow.key_id == key_id)
        )
        return len(list(rows))


class _ReadGate:
    """Holds every racer that read the key until all racers have tried to read it."""

    def __init__(self, parties: int) -> None:
        self._left = parties
        self.all_read = asyncio.Event()

    def arrived(self) -> None:
        self._left -= 1
        if self._left == 0:
            self.all_read.set()


class _GatedKeys:
    """A key repository whose ``get`` returns only once every racer has tried its own ``get``.

    A racer whose read fails (PostgreSQL's ``NOWAIT`` lock) leaves at once; the others then go on
    to write, all holding the same version, so the database alone decides who wins.
    """

    def __init__(self, inner: KeyRepository, gate: _ReadGate) -> None:
        self._inner = inner
        self._gate = gate
        self.tenant_id = inner.tenant_id
        self.add = inner.add
        self.list = inner.list
        self.update = inner.update
        self.remove = inner.remove
        self.add_secret = inner.add_secret
        self.retire_secrets = inner.retire_secrets
        self.ids_with_identity = inner.ids_with_identity
        self.detach_identity = inner.detach_identity
        self.ids_with_role = inner.ids_with_role
        self.strip_role = inner.strip_role
        self.strip_permission = inner.strip_permission
        self.write_credits = inner.write_credits
        self.system_key = inner.system_key
        self.sealed_secret = inner.sealed_secret

    async def get(self, key_id: str, *, for_update: bool = False) -> ApiKey | None:
        try:
            key = await self._inner.get(key_id, for_update=for_update)
        finally:
            self._gate.arrived()
        await self._gate.all_read.wait()
        return key


class _GatedUow:
    """A replica's unit of work on the shared database, with a gated key repository."""

    def __init__(self, inner: UnitOfWork, gate: _ReadGate) -> None:
        self._inner = inner
        self._gate = gate

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        self.tenants = self._inner.tenants
        self.secrets = self._inner.secrets
        self.root_keys = self._inner.root_keys
        self.usage = self._inner.usage
        self.invalidations = self._inner.invalidations
        self.commit = self._inner.commit
        self.service_accounts = self._inner.service_accounts
        self.identities = self._inner.identities
        self.permissions = self._inner.permissions
        self.roles = self._inner.roles
        self.users = self._inner.users
        self.user_tokens = self._inner.user_tokens
        self.invitation_tokens = self._inner.invitation_tokens
        self.audit = self._inner.audit
        self.memberships = self._inner.memberships
        self.invitations = self._inner.invitations
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    def keys(self, tenant_id: str) -> _GatedKeys:
        return _GatedKeys(self._inner.keys(tenant_id), self._gate)


class TestRotationRace:
    async def test_of_concurrent_rotations_exactly_one_succeeds(self, runtime: Runtime) -> None:
        """Within one process KeyService's in-flight guard answers the losers before any I/O."""
        key, old = await _new_key(runtime)
        results = await asyncio.gather(
            *[
                runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=60)
                for _ in range(RACERS)
            ],
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1
        assert [ConcurrentUpdate] * (RACERS - 1) == [type(e) for e in losses]
        rotated, new = wins[0]
        assert key.version + 1 == rotated.version
        assert Outcome.VALID == await _outcome(runtime, new)
        assert Outcome.VALID == await _outcome(runtime, old)
        assert await _secret_count(runtime, key.id) == 2

    async def test_of_rotations_from_several_replicas_exactly_one_succeeds(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        """Each racer is its own KeyService (a replica) and all read the key before any writes.

        The in-process guard of one KeyService cannot help here: PostgreSQL's row lock and,
        on SQLite, the single writer plus the version check in ``update`` must decide.
        """
        key, old = await _new_key(runtime)
        gate = _ReadGate(RACERS)
        replicas = [
            KeyService(
                uow=lambda: _GatedUow(runtime.uow(), gate),
                peppers=runtime.peppers,
                clock=clock,
                entropy=system_entropy,
                cache=runtime.key_cache,
                limits=runtime.limits,
            )
            for _ in range(RACERS)
        ]
        results = await asyncio.gather(
            *[
                replica.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=60)
                for replica in replicas
            ],
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [type(r) for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1
        assert [ConcurrentUpdate] * (RACERS - 1) == losses
        stored = await runtime.keys.get(OPERATOR, key.tenant_id, key.id)
        assert wins[0][0] == stored
        assert Outcome.VALID == await _outcome(runtime, wins[0][1])
        assert Outcome.VALID == await _outcome(runtime, old)
        assert await _secret_count(runtime, key.id) == 2


class TestGrace:
    async def test_the_old_secret_is_valid_until_the_grace_ends(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        key, old = await _new_key(runtime)
        _, new = await runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=600)
        clock.advance(599.999)
        before = (await _outcome(runtime, old), await _outcome(runtime, new))
        clock.advance(0.001)
        at_end = (await _outcome(runtime, old), await _outcome(runtime, new))
        clock.advance(3600)
        after = (await _outcome(runtime, old), await _outcome(runtime, new))
        assert (Outcome.VALID, Outcome.VALID) == before
        assert (Outcome.EXPIRED, Outcome.VALID) == at_end
        assert (Outcome.EXPIRED, Outcome.VALID) == after

    async def test_a_zero_grace_expires_the_old_secret_at_once(self, runtime: Runtime) -> None:
        key, old = await _new_key(runtime)
        _, new = await runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=0)
        assert (Outcome.EXPIRED, Outcome.VALID) == (
            await _outcome(runtime, old),
            await _outcome(runtime, new),
        )

    async def test_the_grace_never_outlives_the_keys_expiry(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        expires_at = to_datetime(clock.now()) + timedelta(seconds=100)
        key, old = await _new_key(runtime, expires_at=expires_at)
        _, new = await runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=3600)
        async with runtime.uow() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            old_end = await uow.session.scalar(
                select(KeySecretRow.expires_at).where(
                    KeySecretRow.key_id == key.id, KeySecretRow.expires_at.is_not(None)
                )
            )
        clock.advance(99)
        before = (await _outcome(runtime, old), await _outcome(runtime, new))
        clock.advance(1)
        after = (await _outcome(runtime, old), await _outcome(runtime, new))
        assert expires_at == old_end
        assert (Outcome.VALID, Outcome.VALID) == before
        assert (Outcome.EXPIRED, Outcome.EXPIRED) == after

    async def test_a_second_rotation_ends_the_first_grace_now(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        key, first = await _new_key(runtime)
        _, second = await runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=600)
        clock.advance(10)
        _, third = await runtime.keys.rotate(OPERATOR, key.tenant_id, key.id, grace_seconds=600)
        outcomes = [await _outcome(runtime, s) for s in (first, second, third)]
        assert [Outcome.EXPIRED, Outcome.VALID, Outcome.VALID] == outcomes
