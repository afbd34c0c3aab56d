"""Pepper rotation across restarts: old digests verify, get re-hashed, and the old pepper can go."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyrack.domain.verification import Outcome
from keyrack.runtime import Runtime, open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey
from keyrack.store.uow import SqlUnitOfWork
from tests.fakes import FakeClock
from tests.integration.conftest import settings_for, versioned_secret

pytestmark = pytest.mark.anyio


async def _stored_pepper_version(runtime: Runtime, secret: str) -> int | None:
    """The pepper version of the row whose digest is the current pepper's digest of ``secret``."""
    async with runtime.uow() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        record = await uow.secrets.find([runtime.peppers.digest(secret)])
    return None if record is None else record.pepper_version


class TestPepperRotation:
    async def test_a_key_survives_a_pepper_rotation_and_the_old_peppers_removal(
        self, database_url: str, tmp_path: Path, clock: FakeClock
    ) -> None:
        pepper_1, pepper_2 = versioned_secret(1), versioned_secret(2)
        master_keys = versioned_secret(1)

        async def start(peppers: str) -> Runtime:
            settings = settings_for(
                database_url, tmp_path, peppers=peppers, master_keys=master_keys
            )
            return await open_runtime(settings, clock=clock)

        first = await start(pepper_1)
        try:
            tenant = await first.tenants.create(OPERATOR, name="Acme")
            _, secret = await first.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        finally:
            await first.close()

        second = await start(f"{pepper_2},{pepper_1}")
        try:
            before_flush = await _stored_pepper_version(second, secret)
            outcome_under_both = (await second.verifier.verify(secret)).outcome
            pending = second.writes.pending
            await second.writes.flush()
            after_flush = await _stored_pepper_version(second, secret)
        finally:
            await second.close()

        third = await start(pepper_2)
        try:
            outcome_under_new = (await third.verifier.verify(secret)).outcome
        finally:
            await third.close()

        assert before_flush is None
        assert Outcome.VALID == outcome_under_both
        assert 2 == pending  # last_used_at and the re-hash
        assert 2 == after_flush
        assert Outcome.VALID == outcome_under_new

    async def test_without_the_rehash_the_old_pepper_cannot_be_removed(
        self, database_url: str, tmp_path: Path, clock: FakeClock
    ) -> None:
        """The control case: a key never verified under both peppers is lost with pepper 1."""
        pepper_1, pepper_2 = versioned_secret(1), versioned_secret(2)
        master_keys = versioned_secret(1)
        first = await open_runtime(
            settings_for(database_url, tmp_path, peppers=pepper_1, master_keys=master_keys),
            clock=clock,
        )
        try:
            tenant = await first.tenants.create(OPERATOR, name="Acme")
            _, secret = await first.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        finally:
            await first.close()
        only_new = await open_runtime(
            settings_for(database_url, tmp_path, peppers=pepper_2, master_keys=master_keys),
            clock=clock,
        )
        try:
            outcome = (await only_new.verifier.verify(secret)).outcome
        finally:
            await only_new.close()
        assert Outcome.NOT_FOUND == outcome
