"""What verify costs the database: statements per verify, and the batched write-behind."""

from __future__ import annotations

import pytest

from keyrack.domain import keys as keyformat
from keyrack.domain.verification import Outcome
from keyrack.runtime import Runtime
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.keys import NewKey
from tests.fakes import FakeClock
from tests.integration.store.statements import StatementLog

pytestmark = pytest.mark.anyio

UNKNOWN = keyformat.generate("kr", entropy=bytes(keyformat.RANDOM_BYTES))


async def _key(runtime: Runtime, name: str = "k") -> tuple[str, str, str]:
    tenant = await runtime.tenants.create(OPERATOR, name=f"Acme {name}")
    key, secret = await runtime.keys.create(OPERATOR, tenant.id, NewKey(name=name))
    return tenant.id, key.id, secret


class TestVerifyStatements:
    async def test_a_cold_verify_runs_exactly_one_statement(self, runtime: Runtime) -> None:
        _, _, secret = await _key(runtime)
        runtime.key_cache.clear()
        with StatementLog(runtime.engine) as log:
            result = await runtime.verifier.verify(secret)
        assert Outcome.VALID == result.outcome
        assert 1 == log.count

    async def test_a_warm_verify_runs_no_statement(self, runtime: Runtime) -> None:
        _, _, secret = await _key(runtime)
        await runtime.verifier.verify(secret)
        with StatementLog(runtime.engine) as log:
            result = await runtime.verifier.verify(secret)
        assert Outcome.VALID == result.outcome
        assert 0 == log.count

    @pytest.mark.parametrize(
        "presented",
        ["", "not a key", "kr_short", "krroot_" + "0" * 39, "x" * 10_000],
        ids=["empty", "prose", "short", "root-key-shape", "huge"],
    )
    async def test_a_malformed_key_runs_no_statement(
        self, runtime: Runtime, presented: str
    ) -> None:
        with StatementLog(runtime.engine) as log:
            result = await runtime.verifier.verify(presented)
        assert Outcome.NOT_FOUND == result.outcome
        assert 0 == log.count

    async def test_a_key_with_a_wrong_checksum_runs_no_statement(self, runtime: Runtime) -> None:
        _, _, secret = await _key(runtime)
        runtime.key_cache.clear()
        tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        with StatementLog(runtime.engine) as log:
            result = await runtime.verifier.verify(tampered)
        assert Outcome.NOT_FOUND == result.outcome
        assert 0 == log.count

    async def test_an_unknown_key_runs_one_statement_then_none_while_cached(
        self, runtime: Runtime
    ) -> None:
        with StatementLog(runtime.engine) as log:
            first = await runtime.verifier.verify(UNKNOWN)
            cold = log.count
            second = await runtime.verifier.verify(UNKNOWN)
        assert (Outcome.NOT_FOUND, Outcome.NOT_FOUND) == (first.outcome, second.outcome)
        assert (1, 1) == (cold, log.count)

    async def test_an_unknown_key_is_looked_up_again_after_the_negative_ttl(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        await runtime.verifier.verify(UNKNOWN)
        clock.advance(2.0)
        with StatementLog(runtime.engine) as log:
            await runtime.verifier.verify(UNKNOWN)
        assert 1 == log.count

    async def test_verify_never_writes(self, runtime: Runtime, clock: FakeClock) -> None:
        _, _, secret = await _key(runtime)
        tenant_id, revoked_id, revoked = await _key(runtime, "revoked")
        await runtime.keys.set_status(OPERATOR, tenant_id, revoked_id, "revoke")
        runtime.key_cache.clear()
        with StatementLog(runtime.engine) as log:
            for _ in range(3):
                await runtime.verifier.verify(secret)
                await runtime.verifier.verify(revoked)
                await runtime.verifier.verify(UNKNOWN)
                await runtime.verifier.verify(secret, tenant_scope=tenant_id)
                clock.advance(31)
        assert 9 == log.count
        assert [] == log.writes()
        assert 0 == log.commits


class TestWriteBehind:
    async def test_flush_writes_last_used_in_one_batched_transaction(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        keys = [await _key(runtime, f"k{i}") for i in range(3)]
        used_at = {}
        for _, key_id, secret in keys:
            clock.advance(7)
            assert (await runtime.verifier.verify(secret)).valid
            used_at[key_id] = to_datetime(clock.now())
        clock.advance(60)
        with StatementLog(runtime.engine) as log:
            written = await runtime.writes.flush()
        stored = {
            key_id: (await runtime.keys.get(OPERATOR, tenant_id, key_id)).last_used_at
            for tenant_id, key_id, _ in keys
        }
        assert 3 == written
        assert 1 == log.count
        assert log.statements[0].lstrip().startswith("UPDATE api_keys")
        assert [True] == log.executemany
        assert 1 == log.commits
        assert used_at == stored

    async def test_the_latest_verify_of_a_key_wins(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        tenant_id, key_id, secret = await _key(runtime)
        for _ in range(3):
            clock.advance(5)
            await runtime.verifier.verify(secret)
        await runtime.writes.flush()
        key = await runtime.keys.get(OPERATOR, tenant_id, key_id)
        assert to_datetime(clock.now()) == key.last_used_at

    async def test_a_flush_with_nothing_pending_runs_no_statement(self, runtime: Runtime) -> None:
        with StatementLog(runtime.engine) as log:
            written = await runtime.writes.flush()
        assert (0, 0, 0) == (written, log.count, log.commits)

    async def test_a_denied_verify_records_no_use(self, runtime: Runtime, clock: FakeClock) -> None:
        tenant_id, key_id, secret = await _key(runtime)
        await runtime.keys.set_status(OPERATOR, tenant_id, key_id, "disable")
        result = await runtime.verifier.verify(secret)
        await runtime.writes.flush()
        key = await runtime.keys.get(OPERATOR, tenant_id, key_id)
        assert Outcome.DISABLED == result.outcome
        assert key.last_used_at is None
