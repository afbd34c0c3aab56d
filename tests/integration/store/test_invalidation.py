"""Changes made by one process reach another process's verify cache through the database log."""

from __future__ import annotations

import asyncio
import time

import pytest

from keyrack.config import Settings
from keyrack.domain.verification import Outcome
from keyrack.runtime import open_runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import NewKey

pytestmark = pytest.mark.anyio


@pytest.fixture
async def replicas(settings: Settings):
    """Two runtimes on one database, as two replicas (or a server and the CLI) would be."""
    first = await open_runtime(settings)
    second = await open_runtime(settings, run_migrations=False)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


class TestAcrossProcesses:
    async def test_revoke_on_one_replica_reaches_the_other_at_its_next_poll(self, replicas):
        a, b = replicas
        tenant = await a.tenants.create(OPERATOR, name="Acme")
        key, secret = await a.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        assert Outcome.VALID == (await b.verifier.verify(secret)).outcome  # b caches it
        await a.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")
        assert Outcome.VALID == (await b.verifier.verify(secret)).outcome  # stale until polled
        assert 1 == await b.invalidator.poll()
        assert Outcome.REVOKED == (await b.verifier.verify(secret)).outcome

    @pytest.mark.parametrize("action", ["disable", "rotate", "update", "delete"])
    async def test_every_key_change_is_logged(self, replicas, action):
        a, b = replicas
        tenant = await a.tenants.create(OPERATOR, name="Acme")
        key, secret = await a.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        await b.verifier.verify(secret)
        if action == "disable":
            await a.keys.set_status(OPERATOR, tenant.id, key.id, "disable")
        elif action == "rotate":
            await a.keys.rotate(OPERATOR, tenant.id, key.id, grace_seconds=0)
        elif action == "update":
            from keyrack.services.keys import KeyChanges

            await a.keys.update(OPERATOR, tenant.id, key.id, KeyChanges(name="renamed"))
        else:
            await a.keys.delete(OPERATOR, tenant.id, key.id)
        await b.invalidator.poll()
        result = await b.verifier.verify(secret)
        expected = {
            "disable": Outcome.DISABLED,
            "rotate": Outcome.EXPIRED,
            "update": Outcome.VALID,
            "delete": Outcome.NOT_FOUND,
        }[action]
        assert expected == result.outcome
        if action == "update":
            assert "renamed" == result.record.name

    async def test_root_key_revocation_and_tenant_deletion_reach_the_other(self, replicas):
        a, b = replicas
        tenant = await a.tenants.create(OPERATOR, name="Acme")
        _, secret = await a.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
        from keyrack.domain.permissions import Permission
        from keyrack.errors import AuthenticationFailed

        account, root = await a.accounts.create(
            OPERATOR, tenant.id, name="gw", permissions=frozenset({Permission.KEYS_VERIFY})
        )
        await b.accounts.authenticate(root)
        await b.verifier.verify(secret)
        [root_key] = await a.accounts.list_root_keys(OPERATOR, tenant.id, account.id)
        await a.accounts.revoke_root_key(OPERATOR, tenant.id, account.id, root_key.id)
        await a.tenants.delete(OPERATOR, tenant.id)
        await b.invalidator.poll()
        with pytest.raises(AuthenticationFailed):
            await b.accounts.authenticate(root)
        assert Outcome.NOT_FOUND == (await b.verifier.verify(secret)).outcome

    async def test_with_background_polling_a_revoke_is_seen_within_a_second(self, settings):
        fast = settings.model_copy(update={"invalidation_poll_seconds": 0.05})
        a = await open_runtime(fast)
        b = await open_runtime(fast, run_migrations=False)
        b.start_background()
        try:
            tenant = await a.tenants.create(OPERATOR, name="Acme")
            key, secret = await a.keys.create(OPERATOR, tenant.id, NewKey(name="k"))
            assert (await b.verifier.verify(secret)).valid
            await a.keys.set_status(OPERATOR, tenant.id, key.id, "revoke")
            started = time.monotonic()
            while (await b.verifier.verify(secret)).outcome is not Outcome.REVOKED:
                assert time.monotonic() - started < 1.0, "the revoke did not reach the replica"
                await asyncio.sleep(0.01)
        finally:
            await b.close()
            await a.close()
