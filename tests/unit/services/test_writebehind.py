import logging

import pytest

from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.limits import (
    NEVER,
    BudgetCharge,
    BudgetState,
    CreditCharge,
    CreditState,
    LimitAnswer,
    LimitRequest,
    identity_slot,
    key_slot,
)
from keyrack.domain.models import Limits
from keyrack.domain.verification import Outcome
from keyrack.services.authz import OPERATOR
from keyrack.services.clock import to_datetime
from keyrack.services.identities import NewIdentity
from keyrack.services.keys import KeyChanges, NewKey
from keyrack.services.ports import Rehash
from keyrack.services.writebehind import MAX_PENDING, WriteBehind
from tests.fakes import FakeDatabase, FakeUnitOfWork, FakeUnitOfWorkFactory

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


@pytest.fixture
async def two_keys(svc, tenant):
    first, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="a"))
    second, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="b"))
    return first, second


class TestTouch:
    def test_latest_use_of_a_key_wins(self):
        writes = WriteBehind(FakeUnitOfWorkFactory(FakeDatabase()))

        writes.touch("ten_1", "key_1", T0)
        writes.touch("ten_1", "key_1", T0 + 5)

        assert 1 == writes.pending

    def test_new_keys_are_dropped_when_the_buffer_is_full(self):
        """The buffer is bounded: once full, uses of further keys wait for the next verify."""

        class Full(
            dict[str, tuple[str, float]]
        ):  # a buffer that reports itself full without holding a million items
            def __len__(self):
                return MAX_PENDING

        writes = WriteBehind(FakeUnitOfWorkFactory(FakeDatabase()))
        writes._last_used = Full()

        writes.touch("ten_1", "key_1", T0)

        assert {} == dict(writes._last_used)


class TestFlush:
    async def test_nothing_pending_writes_nothing_and_opens_no_transaction(self, svc):
        assert 0 == await svc.writes.flush()
        assert 0 == svc.uow.opened

    async def test_writes_everything_in_one_committed_transaction(self, svc, tenant, two_keys):
        first, second = two_keys
        secret_id = next(iter(svc.db.secrets))
        opened = svc.uow.opened
        svc.writes.touch(tenant.id, first.id, T0 + 1)
        svc.writes.touch(tenant.id, second.id, T0 + 2)
        svc.writes.touch(tenant.id, first.id, T0 + 3)
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"d" * 32, pepper_version=2)
        )

        written = await svc.writes.flush()

        assert 3 == written
        assert opened + 1 == svc.uow.opened
        assert svc.uow.units[-1].committed
        assert to_datetime(T0 + 3) == svc.db.keys[first.id].last_used_at
        assert to_datetime(T0 + 2) == svc.db.keys[second.id].last_used_at
        assert (b"d" * 32, 2) == (
            svc.db.secrets[secret_id].digest,
            svc.db.secrets[secret_id].pepper_version,
        )
        assert 0 == svc.writes.pending

    async def test_rehashes_alone_are_written(self, svc, tenant, two_keys):
        secret_id = next(iter(svc.db.secrets))
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"e" * 32, pepper_version=3)
        )

        assert 1 == await svc.writes.flush()
        assert 3 == svc.db.secrets[secret_id].pepper_version

    async def test_keeps_everything_when_the_database_is_down(self, svc, tenant, two_keys, caplog):
        first, _ = two_keys
        secret_id = next(iter(svc.db.secrets))
        svc.writes.touch(tenant.id, first.id, T0 + 1)
        svc.writes.rehash(
            Rehash(tenant_id=tenant.id, secret_id=secret_id, digest=b"d" * 32, pepper_version=2)
        )
        svc.db.unavailable = True

        with caplog.at_level(logging.WARNING):
            written = await svc.writes.flush()

        assert 0 == written
        assert 2 == svc.writes.pending
        assert ["writebehind.flush_failed"] == [r.getMessage() for r in caplog.records]
        svc.db.unavailable = False
        assert 2 == await svc.writes.flush()
        assert to_datetime(T0 + 1) == svc.db.keys[first.id].last_used_at

    async def test_a_use_recorded_during_a_failed_flush_is_kept_over_the_older_one(self, svc):
        db = svc.db
        writes: WriteBehind

        def failing_uow() -> FakeUnitOfWork:
            writes.touch("ten_1", "key_1", T0 + 9)  # a verify lands while the flush runs
            db.unavailable = True
            return FakeUnitOfWork(db)

        writes = WriteBehind(failing_uow)
        writes.touch("ten_1", "key_1", T0)
        writes.touch("ten_1", "key_2", T0)

        assert 0 == await writes.flush()
        db.unavailable = False
        writes._uow = FakeUnitOfWorkFactory(db)

        assert {"key_1": ("ten_1", T0 + 9), "key_2": ("ten_1", T0)} == writes._last_used

    async def test_other_errors_propagate(self, svc):
        def broken() -> FakeUnitOfWork:
            raise RuntimeError("bug")

        writes = WriteBehind(broken)
        writes.touch("ten_1", "key_1", T0)

        with pytest.raises(RuntimeError):
            await writes.flush()


class TestRootRehash:
    async def test_a_root_rehash_survives_a_failed_flush_and_lands_after(self, svc):
        from keyrack.services.ports import RootRehash

        root = await svc.accounts.bootstrap()
        assert root is not None
        [stored] = svc.db.root_keys.values()
        item = RootRehash(
            tenant_id=None,
            root_key_id=stored.root_key.id,
            digest=b"r" * 32,
            pepper_version=7,
        )
        assert "digest" not in repr(item)
        svc.writes.rehash_root(item)
        svc.db.unavailable = True
        assert 0 == await svc.writes.flush()
        assert 1 == svc.writes.pending
        svc.db.unavailable = False
        assert 1 == await svc.writes.flush()
        assert 7 == svc.db.root_keys[stored.root_key.id].pepper_version


SPEND = 1_000


@pytest.fixture
async def limited_key(svc, tenant):
    """A key with a balance of 100 and a budget, as created (credits version 0)."""
    key, _ = await svc.keys.create(
        OPERATOR,
        tenant.id,
        NewKey(name="limited", limits=Limits(credits=Credits(100), budget=Budget(10_000))),
    )
    return key


def _credits(slot: str, version: int) -> CreditCharge:
    return CreditCharge(slot, 100, 0, version, 0, NEVER, 1)


def _budget(slot: str) -> BudgetCharge:
    return BudgetCharge(slot, 10_000, 8_000, NEVER, 0, 0, SPEND)


class TestCounters:
    async def test_credits_and_budget_snapshots_are_written_on_flush(
        self, svc, tenant, limited_key
    ):
        slot = key_slot(limited_key.id)
        request = LimitRequest(tenant.id, credits=_credits(slot, 0), budget=_budget(slot))
        answer = LimitAnswer(
            Outcome.VALID,
            new_credits=CreditState(99, 5, 0),
            new_budget=BudgetState(SPEND, 7),
        )

        svc.writes.counters(request, answer)
        pending = svc.writes.pending
        written = await svc.writes.flush()

        assert (2, 2) == (pending, written)
        limits = svc.db.keys[limited_key.id].limits
        assert limits.credits is not None
        assert limits.budget is not None
        assert (99, 5, 0) == (
            limits.credits.remaining,
            limits.credits.refilled_at_ms,
            limits.credits_version,
        )
        assert (SPEND, 7) == (limits.budget.spent, limits.budget.period_start_ms)

    async def test_the_latest_counter_of_a_slot_wins(self, svc, tenant, limited_key):
        slot = key_slot(limited_key.id)
        request = LimitRequest(tenant.id, credits=_credits(slot, 0))

        svc.writes.counters(request, LimitAnswer(Outcome.VALID, new_credits=CreditState(99, 0, 0)))
        svc.writes.counters(request, LimitAnswer(Outcome.VALID, new_credits=CreditState(98, 0, 0)))

        assert 1 == svc.writes.pending
        assert 1 == await svc.writes.flush()
        credits = svc.db.keys[limited_key.id].limits.credits
        assert credits is not None
        assert 98 == credits.remaining

    async def test_a_snapshot_of_an_older_version_does_not_undo_an_explicit_set(
        self, svc, tenant, limited_key
    ):
        """A verify's counter from before a set carries the old version and is dropped."""
        slot = key_slot(limited_key.id)
        svc.writes.counters(
            LimitRequest(tenant.id, credits=_credits(slot, 0)),
            LimitAnswer(Outcome.VALID, new_credits=CreditState(42, 0, 0)),
        )
        await svc.keys.update(OPERATOR, tenant.id, limited_key.id, KeyChanges(credits=Credits(500)))

        assert 1 == await svc.writes.flush()

        limits = svc.db.keys[limited_key.id].limits
        assert limits.credits is not None
        assert (500, 1) == (limits.credits.remaining, limits.credits_version)

    async def test_an_identitys_balance_snapshot_lands_on_the_identity(self, svc, tenant):
        identity = await svc.identities.create(
            OPERATOR, tenant.id, NewIdentity(external_id="cus_1", credits=Credits(10))
        )
        svc.writes.counters(
            LimitRequest(tenant.id, credits=_credits(identity_slot(identity.id), 0)),
            LimitAnswer(Outcome.VALID, new_credits=CreditState(9, 0, 0)),
        )

        assert 1 == await svc.writes.flush()

        credits = svc.db.identities[identity.id].limits.credits
        assert credits is not None
        assert 9 == credits.remaining

    @pytest.mark.parametrize(
        ("request_", "answer"),
        [
            pytest.param(
                LimitRequest("ten_1", credits=_credits("k:key_1", 0), budget=_budget("k:key_1")),
                LimitAnswer(Outcome.USAGE_EXCEEDED, credits=CreditState(0, 0, 0)),
                id="denied-nothing-to-write",
            ),
            pytest.param(
                LimitRequest("ten_1"),
                LimitAnswer(
                    Outcome.VALID,
                    new_credits=CreditState(1, 0, 0),
                    new_budget=BudgetState(1, 0),
                ),
                id="no-charge-to-attribute",
            ),
        ],
    )
    def test_counters_without_both_a_charge_and_a_new_state_are_not_kept(self, request_, answer):
        writes = WriteBehind(FakeUnitOfWorkFactory(FakeDatabase()))

        writes.counters(request_, answer)

        assert 0 == writes.pending

    async def test_only_the_budget_is_kept_when_only_the_budget_changed(
        self, svc, tenant, limited_key
    ):
        slot = key_slot(limited_key.id)
        svc.writes.counters(
            LimitRequest(tenant.id, credits=_credits(slot, 0), budget=_budget(slot)),
            LimitAnswer(Outcome.VALID, new_budget=BudgetState(SPEND, 0)),
        )

        assert 1 == await svc.writes.flush()

        limits = svc.db.keys[limited_key.id].limits
        assert limits.budget is not None
        assert limits.credits is not None
        assert (SPEND, 100) == (limits.budget.spent, limits.credits.remaining)

    async def test_counters_survive_a_failed_flush_and_newer_ones_win(
        self, svc, tenant, limited_key
    ):
        slot = key_slot(limited_key.id)
        request = LimitRequest(tenant.id, credits=_credits(slot, 0), budget=_budget(slot))
        db = svc.db
        writes: WriteBehind

        def failing_uow() -> FakeUnitOfWork:
            # A verify lands while the flush runs; the database then fails the flush.
            writes.counters(
                request,
                LimitAnswer(
                    Outcome.VALID,
                    new_credits=CreditState(97, 0, 0),
                    new_budget=BudgetState(3 * SPEND, 0),
                ),
            )
            db.unavailable = True
            return FakeUnitOfWork(db)

        writes = WriteBehind(failing_uow)
        writes.counters(
            request,
            LimitAnswer(
                Outcome.VALID, new_credits=CreditState(99, 0, 0), new_budget=BudgetState(SPEND, 0)
            ),
        )
        other = "k:key_other"
        writes.counters(
            LimitRequest(tenant.id, credits=_credits(other, 0), budget=_budget(other)),
            LimitAnswer(
                Outcome.VALID, new_credits=CreditState(5, 0, 0), new_budget=BudgetState(6, 0)
            ),
        )

        assert 0 == await writes.flush()
        db.unavailable = False
        writes._uow = FakeUnitOfWorkFactory(db)

        assert 4 == writes.pending
        assert 4 == await writes.flush()  # the other key's counters find no row and are skipped
        limits = db.keys[limited_key.id].limits
        assert limits.credits is not None
        assert limits.budget is not None
        assert (97, 3 * SPEND) == (limits.credits.remaining, limits.budget.spent)
