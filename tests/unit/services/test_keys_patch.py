"""Key PATCHes of policy and limit fields, references to identities, and racing deletes."""

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits
from keyrack.domain.limits import BudgetCharge, BudgetState, LimitAnswer, LimitRequest, key_slot
from keyrack.domain.models import Limits
from keyrack.domain.policy import build_policy
from keyrack.domain.ratelimit import RateLimit
from keyrack.domain.verification import Outcome
from keyrack.errors import IdentityNotFound, InvalidInput, KeyNotFound
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import KeyChanges, KeyService, NewKey
from tests.fakes import FakeKeyRepository, FakeUnitOfWork

pytestmark = pytest.mark.anyio

REQUESTS = RateLimit("requests", 10, 60_000)


async def _key(svc, tenant, **fields):
    key, _ = await svc.keys.create(OPERATOR, tenant.id, NewKey(name="k", **fields))
    return key


class TestPolicyChanges:
    async def test_a_policy_field_is_merged_into_the_stored_policy(self, svc, tenant):
        key = await _key(
            svc,
            tenant,
            policy=build_policy(ip_allowlist=["10.0.0.0/8"], require_tls=True),
        )

        updated = await svc.keys.update(
            OPERATOR, tenant.id, key.id, KeyChanges(allowed_origins=("https://app.example",))
        )

        assert (
            build_policy(
                ip_allowlist=["10.0.0.0/8"],
                allowed_origins=["https://app.example"],
                require_tls=True,
            )
            == updated.policy
        )
        assert updated.policy == svc.db.keys[key.id].policy
        assert key.limits == updated.limits

    async def test_an_invalid_policy_field_changes_nothing(self, svc, tenant):
        key = await _key(svc, tenant)
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput):
            await svc.keys.update(
                OPERATOR, tenant.id, key.id, KeyChanges(ip_allowlist=("not an address",))
            )

        assert before == svc.db.snapshot()


class TestLimitChanges:
    async def test_changing_rate_limits_keeps_the_balance_and_its_version(self, svc, tenant):
        key = await _key(svc, tenant, limits=Limits(credits=Credits(5)))

        updated = await svc.keys.update(
            OPERATOR, tenant.id, key.id, KeyChanges(rate_limits=(REQUESTS,))
        )

        assert (REQUESTS,) == updated.limits.rate_limits
        assert key.limits.credits == updated.limits.credits
        assert 0 == updated.limits.credits_version

    async def test_a_new_balance_is_an_explicit_set_stamped_now(self, svc, tenant):
        key = await _key(svc, tenant, limits=Limits(credits=Credits(5)))
        svc.clock.advance(60)

        updated = await svc.keys.update(OPERATOR, tenant.id, key.id, KeyChanges(credits=Credits(9)))

        assert Credits(9, refilled_at_ms=int(svc.clock.now() * 1000)) == updated.limits.credits
        assert 1 == updated.limits.credits_version

    async def test_a_new_budget_configuration_keeps_what_the_period_has_spent(self, svc, tenant):
        key = await _key(svc, tenant, limits=Limits(budget=Budget(1_000)))
        slot = key_slot(key.id)
        svc.writes.counters(  # verifies spent 300 in the period starting at 7; written behind
            LimitRequest(tenant.id, budget=BudgetCharge(slot, 1_000, 800, 7, 0, 0, 300)),
            LimitAnswer(Outcome.VALID, new_budget=BudgetState(300, 7)),
        )
        await svc.writes.flush()

        updated = await svc.keys.update(
            OPERATOR,
            tenant.id,
            key.id,
            KeyChanges(budget=Budget(5_000, BudgetPeriod.MONTH, spent=0, period_start_ms=0)),
        )

        assert (
            Budget(5_000, BudgetPeriod.MONTH, spent=300, period_start_ms=7) == updated.limits.budget
        )

    async def test_a_first_budget_starts_from_what_it_is_given(self, svc, tenant):
        key = await _key(svc, tenant)

        updated = await svc.keys.update(
            OPERATOR, tenant.id, key.id, KeyChanges(budget=Budget(5_000))
        )

        assert Budget(5_000) == updated.limits.budget

    async def test_removing_the_budget(self, svc, tenant):
        key = await _key(svc, tenant, limits=Limits(budget=Budget(1_000)))

        updated = await svc.keys.update(OPERATOR, tenant.id, key.id, KeyChanges(budget=None))

        assert updated.limits.budget is None

    async def test_invalid_merged_limits_change_nothing(self, svc, tenant):
        key = await _key(svc, tenant)
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="distinct"):
            await svc.keys.update(
                OPERATOR, tenant.id, key.id, KeyChanges(rate_limits=(REQUESTS, REQUESTS))
            )

        assert before == svc.db.snapshot()


class TestIdentityReference:
    async def test_creating_a_key_of_an_unknown_identity_is_refused(self, svc, tenant):
        before = svc.db.snapshot()

        with pytest.raises(IdentityNotFound):
            await _key(svc, tenant, identity_id="idn_missing")

        assert before == svc.db.snapshot()

    async def test_moving_a_key_to_an_unknown_identity_is_refused(self, svc, tenant):
        key = await _key(svc, tenant)
        before = svc.db.snapshot()

        with pytest.raises(IdentityNotFound):
            await svc.keys.update(OPERATOR, tenant.id, key.id, KeyChanges(identity_id="idn_x"))

        assert before == svc.db.snapshot()


class TestDeleteRace:
    async def test_a_key_deleted_by_another_transaction_meanwhile_is_not_found(self, svc, tenant):
        class Vanishing(FakeKeyRepository):
            async def remove(self, key_id):
                return False  # another transaction deleted the row after it was read

        class Uow(FakeUnitOfWork):
            def keys(self, tenant_id):
                return Vanishing(self, tenant_id)

        key = await _key(svc, tenant)
        keys = KeyService(
            uow=lambda: Uow(svc.db),
            peppers=svc.peppers,
            clock=svc.clock,
            entropy=svc.entropy,
            cache=svc.key_cache,
            limits=MemoryLimitStore(svc.clock.now),
        )
        before = svc.db.snapshot()

        with pytest.raises(KeyNotFound):
            await keys.delete(OPERATOR, tenant.id, key.id)

        assert before == svc.db.snapshot()
