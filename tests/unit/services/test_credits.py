"""Credits balances of keys and identities: read, set, increment, decrement (over fakes)."""

import anyio
import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain.credits import MAX_AMOUNT, Credits, Refill, RefillInterval
from keyrack.domain.limits import (
    CreditCharge,
    CreditState,
    LimitAnswer,
    LimitRequest,
    identity_slot,
    key_slot,
)
from keyrack.domain.models import Limits
from keyrack.domain.permissions import Permission
from keyrack.errors import (
    BackendUnavailable,
    ConcurrentUpdate,
    IdentityNotFound,
    InsufficientCredits,
    InvalidInput,
    KeyNotFound,
    PermissionDenied,
    TenantNotFound,
)
from keyrack.services.authz import OPERATOR
from keyrack.services.credits import Balance, CreditsService
from keyrack.services.identities import NewIdentity
from keyrack.services.keys import NewKey
from keyrack.services.limits import ResilientLimits
from tests.fakes import tenant_principal

pytestmark = pytest.mark.anyio

P = Permission
DAILY = Refill(RefillInterval.DAILY, 100)


class DownStore:
    """A shared limit store that cannot be reached (Redis down)."""

    async def apply(self, request: LimitRequest, *, dry_run: bool = False) -> LimitAnswer:
        raise BackendUnavailable

    async def release(self, tenant_id: str, slot: str, lease_id: str) -> bool:
        raise BackendUnavailable

    async def set_credits(self, tenant_id: str, slot: str, state: CreditState) -> None:
        raise BackendUnavailable

    async def adjust_credits(
        self, tenant_id: str, charge: CreditCharge, delta: int
    ) -> CreditState | None:
        raise BackendUnavailable

    async def close(self) -> None:
        return None


@pytest.fixture
def store(svc):
    return MemoryLimitStore(svc.clock.now)


@pytest.fixture
def credits(svc, store):
    return CreditsService(uow=svc.uow, clock=svc.clock, limits=store, cache=svc.key_cache)


async def _key(svc, tenant, limits=None, **fields):
    key, secret = await svc.keys.create(
        OPERATOR, tenant.id, NewKey(name="k", limits=limits or Limits(), **fields)
    )
    return key, secret


@pytest.fixture
async def funded(svc, tenant):
    """A key with a balance of 50 that refills daily to 100."""
    key, _ = await _key(svc, tenant, Limits(credits=Credits(50, DAILY)))
    return key


@pytest.fixture
async def identity(svc, tenant):
    """An identity with a shared balance of 10."""
    return await svc.identities.create(
        OPERATOR, tenant.id, NewIdentity(external_id="cus_1", credits=Credits(10))
    )


class TestGet:
    async def test_a_balance_reads_live_from_the_limit_store(self, credits, store, tenant, funded):
        await credits.change(OPERATOR, tenant.id, funded.id, op="decrement", amount=5)

        balance = await credits.get(OPERATOR, tenant.id, funded.id)

        assert Balance(45, DAILY) == balance

    async def test_reading_consumes_nothing(self, credits, tenant, funded):
        first = await credits.get(OPERATOR, tenant.id, funded.id)
        second = await credits.get(OPERATOR, tenant.id, funded.id)

        assert Balance(50, DAILY) == first == second

    async def test_an_identitys_balance(self, credits, tenant, identity):
        assert Balance(10, Refill()) == await credits.get(OPERATOR, tenant.id, identity.id)

    async def test_a_key_without_credits_is_unlimited(self, svc, credits, tenant):
        key, _ = await _key(svc, tenant)

        assert Balance(None, Refill()) == await credits.get(OPERATOR, tenant.id, key.id)

    async def test_an_unlimited_balance_keeps_its_refill(self, svc, credits, tenant):
        key, _ = await _key(svc, tenant, Limits(credits=Credits(None, DAILY)))

        assert Balance(None, DAILY) == await credits.get(OPERATOR, tenant.id, key.id)

    async def test_a_reader_in_the_tenant_may_read(self, credits, tenant, funded):
        reader = tenant_principal(tenant.id, P.KEYS_READ)

        assert Balance(50, DAILY) == await credits.get(reader, tenant.id, funded.id)

    @pytest.mark.parametrize(
        ("owner_id", "error"),
        [
            ("key_missing", KeyNotFound),
            ("idn_missing", IdentityNotFound),
        ],
        ids=["key", "identity"],
    )
    async def test_an_unknown_owner_is_not_found(self, credits, tenant, owner_id, error):
        with pytest.raises(error):
            await credits.get(OPERATOR, tenant.id, owner_id)

    async def test_an_unknown_tenant_is_not_found(self, credits):
        with pytest.raises(TenantNotFound):
            await credits.get(OPERATOR, "ten_missing", "key_missing")

    async def test_another_tenants_key_is_not_found(self, credits, other_tenant, funded):
        with pytest.raises(TenantNotFound):
            await credits.get(
                tenant_principal(other_tenant.id, P.KEYS_READ), funded.tenant_id, funded.id
            )

    async def test_a_caller_without_keys_read_is_denied(self, credits, tenant, funded):
        with pytest.raises(PermissionDenied):
            await credits.get(tenant_principal(tenant.id, P.KEYS_VERIFY), tenant.id, funded.id)

    async def test_a_plain_store_that_is_down_raises(self, svc, tenant, funded):
        down = CreditsService(uow=svc.uow, clock=svc.clock, limits=DownStore(), cache=svc.key_cache)

        with pytest.raises(BackendUnavailable):
            await down.get(OPERATOR, tenant.id, funded.id)

    @pytest.mark.xfail(
        reason="credits.get reads a limited balance as unlimited (remaining None) when the "
        "resilient store answers its dry run without counters (Redis down); reported",
        raises=AssertionError,
        strict=True,
    )
    async def test_a_balance_is_not_reported_unlimited_while_the_shared_store_is_down(
        self, svc, tenant, funded
    ):
        resilient = ResilientLimits(DownStore(), MemoryLimitStore(svc.clock.now), clock=svc.clock)
        down = CreditsService(uow=svc.uow, clock=svc.clock, limits=resilient, cache=svc.key_cache)

        try:
            balance = await down.get(OPERATOR, tenant.id, funded.id)
        except BackendUnavailable:
            return  # the documented answer: the balance cannot be read now

        assert balance.remaining is not None, "a balance of 50 read as unlimited"


class TestAmountChecks:
    @pytest.mark.parametrize(
        "amount",
        [-1, MAX_AMOUNT + 1, True, 1.0, "5"],
        ids=["negative", "too-large", "bool", "float", "string"],
    )
    @pytest.mark.parametrize("op", ["set", "increment", "decrement"])
    async def test_an_amount_out_of_bounds_changes_nothing(self, svc, credits, funded, op, amount):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="amount must be an integer") as raised:
            await credits.change(OPERATOR, funded.tenant_id, funded.id, op=op, amount=amount)

        assert {"field": "amount"} == raised.value.details
        assert before == svc.db.snapshot()
        assert Balance(50, DAILY) == await credits.get(OPERATOR, funded.tenant_id, funded.id)

    @pytest.mark.parametrize("op", ["increment", "decrement"])
    async def test_increment_and_decrement_need_an_amount(self, svc, credits, tenant, funded, op):
        with pytest.raises(InvalidInput, match=f"{op} needs an amount"):
            await credits.change(OPERATOR, tenant.id, funded.id, op=op, amount=None)

    async def test_a_caller_without_keys_write_is_denied(self, credits, tenant, funded):
        with pytest.raises(PermissionDenied):
            await credits.change(
                tenant_principal(tenant.id, P.KEYS_READ), tenant.id, funded.id, op="set", amount=1
            )


class TestSet:
    async def test_a_set_replaces_the_live_balance_and_bumps_the_version(
        self, svc, credits, store, tenant, funded
    ):
        await credits.change(OPERATOR, tenant.id, funded.id, op="decrement", amount=10)
        svc.clock.advance(5)

        balance = await credits.change(OPERATOR, tenant.id, funded.id, op="set", amount=7)

        now_ms = int(svc.clock.now() * 1000)
        assert Balance(7, DAILY) == balance
        assert {key_slot(funded.id): CreditState(7, now_ms, 1)} == dict(
            store.snapshot(tenant.id).credits
        )
        stored = svc.db.keys[funded.id]
        assert (1, 2) == (stored.limits.credits_version, stored.version)
        assert Balance(7, DAILY) == await credits.get(OPERATOR, tenant.id, funded.id)

    async def test_a_set_drops_the_key_from_the_verify_cache_and_logs_the_invalidation(
        self, svc, credits, tenant
    ):
        key, secret = await _key(svc, tenant, Limits(credits=Credits(5)))
        await svc.verifier.verify(secret)
        assert 1 == len(svc.key_cache)
        logged = len(svc.db.invalidations)

        await credits.change(OPERATOR, tenant.id, key.id, op="set", amount=9)

        assert 0 == len(svc.key_cache)
        assert [key.id] == [owner for owner, _ in list(svc.db.invalidations.values())[logged:]]

    async def test_a_set_to_none_makes_the_balance_unlimited_without_touching_the_store(
        self, svc, credits, store, tenant, funded
    ):
        balance = await credits.change(OPERATOR, tenant.id, funded.id, op="set", amount=None)

        assert Balance(None, DAILY) == balance
        assert {} == dict(store.snapshot(tenant.id).credits)
        assert Balance(None, DAILY) == await credits.get(OPERATOR, tenant.id, funded.id)

    async def test_a_set_gives_a_key_without_credits_a_balance(self, svc, credits, store, tenant):
        key, _ = await _key(svc, tenant)

        balance = await credits.change(OPERATOR, tenant.id, key.id, op="set", amount=3)

        assert Balance(3, Refill()) == balance
        assert Balance(3, Refill()) == await credits.get(OPERATOR, tenant.id, key.id)

    async def test_a_set_of_an_identity_drops_every_key_of_the_identity_from_the_cache(
        self, svc, credits, store, tenant, identity
    ):
        key, secret = await _key(svc, tenant, identity_id=identity.id)
        await svc.verifier.verify(secret)
        assert 1 == len(svc.key_cache)

        balance = await credits.change(OPERATOR, tenant.id, identity.id, op="set", amount=4)

        assert Balance(4, Refill()) == balance
        assert 0 == len(svc.key_cache)
        assert 2 == svc.db.identities[identity.id].version
        now_ms = int(svc.clock.now() * 1000)
        slot = identity_slot(identity.id)
        assert CreditState(4, now_ms, 1) == store.snapshot(tenant.id).credits[slot]
        assert key.id in [owner for owner, _ in svc.db.invalidations.values()]

    @pytest.mark.xfail(
        reason="CreditsService._set updates an identity through IdentityRepository.update, "
        "which leaves the credits snapshot columns alone, and never calls write_credits; "
        "reported",
        raises=AssertionError,
        strict=True,
    )
    async def test_a_set_of_an_identity_is_stored_in_its_snapshot(
        self, svc, credits, tenant, identity
    ):
        await credits.change(OPERATOR, tenant.id, identity.id, op="set", amount=4)

        limits = svc.db.identities[identity.id].limits
        assert limits.credits is not None
        assert (4, 1) == (limits.credits.remaining, limits.credits_version)

    @pytest.mark.xfail(
        reason="as above: the identity keeps its old balance in the database, so a set to "
        "unlimited does not take effect; reported",
        raises=AssertionError,
        strict=True,
    )
    async def test_a_set_of_an_identity_to_unlimited_takes_effect(self, credits, tenant, identity):
        await credits.change(OPERATOR, tenant.id, identity.id, op="set", amount=None)

        assert Balance(None, Refill()) == await credits.get(OPERATOR, tenant.id, identity.id)

    async def test_of_two_concurrent_sets_one_wins(self, svc, credits, store, tenant, funded):
        outcomes: dict[int, object] = {}

        async def set_to(amount: int) -> None:
            try:
                outcomes[amount] = await credits.change(
                    OPERATOR, tenant.id, funded.id, op="set", amount=amount
                )
            except ConcurrentUpdate as exc:
                outcomes[amount] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(set_to, 1)
            group.start_soon(set_to, 2)

        assert Balance(1, DAILY) == outcomes[1]
        assert isinstance(outcomes[2], ConcurrentUpdate)
        assert 1 == store.snapshot(tenant.id).credits[key_slot(funded.id)].remaining
        assert 1 == svc.db.keys[funded.id].limits.credits_version

    @pytest.mark.parametrize(
        ("owner_id", "error"),
        [("key_missing", KeyNotFound), ("idn_missing", IdentityNotFound)],
        ids=["key", "identity"],
    )
    async def test_an_unknown_owner_is_not_found(self, credits, tenant, owner_id, error):
        with pytest.raises(error):
            await credits.change(OPERATOR, tenant.id, owner_id, op="set", amount=1)


class TestIncrementDecrement:
    async def test_increment_adds_and_writes_the_snapshot_with_the_same_version(
        self, svc, credits, store, tenant, funded
    ):
        balance = await credits.change(OPERATOR, tenant.id, funded.id, op="increment", amount=25)

        assert Balance(75, DAILY) == balance
        stored = svc.db.keys[funded.id].limits
        assert stored.credits is not None
        assert (75, 0) == (stored.credits.remaining, stored.credits_version)
        assert 75 == store.snapshot(tenant.id).credits[key_slot(funded.id)].remaining

    async def test_decrement_to_exactly_zero(self, svc, credits, tenant, funded):
        balance = await credits.change(OPERATOR, tenant.id, funded.id, op="decrement", amount=50)

        assert Balance(0, DAILY) == balance

    async def test_decrement_below_zero_changes_nothing(self, svc, credits, store, tenant, funded):
        await credits.change(OPERATOR, tenant.id, funded.id, op="decrement", amount=10)
        before = svc.db.snapshot()
        counters = dict(store.snapshot(tenant.id).credits)

        with pytest.raises(InsufficientCredits):
            await credits.change(OPERATOR, tenant.id, funded.id, op="decrement", amount=41)

        assert before == svc.db.snapshot()
        assert counters == dict(store.snapshot(tenant.id).credits)
        assert Balance(40, DAILY) == await credits.get(OPERATOR, tenant.id, funded.id)

    async def test_an_increment_past_the_largest_balance_changes_nothing(
        self, svc, credits, store, tenant, funded
    ):
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="cannot pass") as raised:
            await credits.change(
                OPERATOR, tenant.id, funded.id, op="increment", amount=MAX_AMOUNT - 49
            )

        assert {"field": "amount"} == raised.value.details
        assert before == svc.db.snapshot()
        assert Balance(50, DAILY) == await credits.get(OPERATOR, tenant.id, funded.id)

    async def test_an_increment_up_to_the_largest_balance_is_allowed(self, credits, tenant, funded):
        balance = await credits.change(
            OPERATOR, tenant.id, funded.id, op="increment", amount=MAX_AMOUNT - 50
        )

        assert Balance(MAX_AMOUNT, DAILY) == balance

    async def test_an_identitys_balance_is_changed_and_its_snapshot_written(
        self, svc, credits, tenant, identity
    ):
        balance = await credits.change(OPERATOR, tenant.id, identity.id, op="decrement", amount=3)

        assert Balance(7, Refill()) == balance
        stored = svc.db.identities[identity.id].limits.credits
        assert stored is not None
        assert 7 == stored.remaining

    @pytest.mark.parametrize(
        "limits",
        [Limits(), Limits(credits=Credits(None, DAILY))],
        ids=["no-credits", "unlimited"],
    )
    @pytest.mark.parametrize("op", ["increment", "decrement"])
    async def test_an_unlimited_balance_cannot_be_changed(self, svc, credits, tenant, limits, op):
        key, _ = await _key(svc, tenant, limits)
        before = svc.db.snapshot()

        with pytest.raises(InvalidInput, match="unlimited") as raised:
            await credits.change(OPERATOR, tenant.id, key.id, op=op, amount=1)

        assert {"field": "op"} == raised.value.details
        assert before == svc.db.snapshot()

    @pytest.mark.parametrize(
        ("owner_id", "error"),
        [("key_missing", KeyNotFound), ("idn_missing", IdentityNotFound)],
        ids=["key", "identity"],
    )
    async def test_an_unknown_owner_is_not_found(self, credits, tenant, owner_id, error):
        with pytest.raises(error):
            await credits.change(OPERATOR, tenant.id, owner_id, op="increment", amount=1)

    async def test_an_unknown_tenant_is_not_found(self, credits):
        with pytest.raises(TenantNotFound):
            await credits.change(OPERATOR, "ten_missing", "key_missing", op="decrement", amount=1)
