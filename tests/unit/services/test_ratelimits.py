"""The standalone rate limit (``POST /v1/ratelimit``) and lease release, over in-memory stores."""

import pytest

from keyrack.backends.memory import MemoryLimitStore
from keyrack.domain import ids, leases
from keyrack.domain.limits import LeaseCharge, LimitRequest, RateReport, key_slot
from keyrack.domain.permissions import Permission, Principal
from keyrack.domain.verification import Outcome
from keyrack.errors import InvalidInput, LeaseNotFound, PermissionDenied, TenantNotFound
from keyrack.services.authz import OPERATOR
from keyrack.services.ratelimits import PLATFORM_NAMESPACE, LimitService, RateLimitAnswer
from tests.fakes import tenant_principal

pytestmark = pytest.mark.anyio

P = Permission


def _platform(*permissions: Permission) -> Principal:
    return Principal(
        kind="service_account", id="sa_platform", tenant_id=None, permissions=frozenset(permissions)
    )


@pytest.fixture
def store(svc):
    return MemoryLimitStore(svc.clock.now)


@pytest.fixture
def limit_api(svc, store):
    return LimitService(uow=svc.uow, limits=store)


class TestRateLimit:
    async def test_charges_the_named_counter_in_the_callers_tenant(
        self, limit_api, store, tenant, svc
    ):
        actor = tenant_principal(tenant.id, P.KEYS_VERIFY)

        answers = [
            await limit_api.ratelimit(
                actor, tenant_id=None, namespace="chat", identifier="u1", limit=2, window_seconds=60
            )
            for _ in range(3)
        ]

        assert [True, True, False] == [a.success for a in answers]
        first = answers[0]
        assert RateLimitAnswer(True, RateReport("chat", 2, 1, first.report.reset_at_ms)) == first
        assert first.report.reset_at_ms > svc.clock.now() * 1000
        assert ["n:4:chat:u1"] == list(store.snapshot(tenant.id).rates)
        assert {} == dict(store.snapshot(PLATFORM_NAMESPACE).rates)

    async def test_a_platform_caller_naming_no_tenant_uses_the_platform_namespace(
        self, limit_api, store, tenant
    ):
        answer = await limit_api.ratelimit(
            _platform(P.KEYS_VERIFY),
            tenant_id=None,
            namespace="chat",
            identifier="u1",
            limit=5,
            window_seconds=60,
        )

        assert (True, 4) == (answer.success, answer.report.remaining)
        assert ["n:4:chat:u1"] == list(store.snapshot(PLATFORM_NAMESPACE).rates)
        assert {} == dict(store.snapshot(tenant.id).rates)

    async def test_a_platform_caller_may_name_a_tenant(self, limit_api, store, tenant):
        await limit_api.ratelimit(
            OPERATOR,
            tenant_id=tenant.id,
            namespace="chat",
            identifier="u1",
            limit=5,
            window_seconds=60,
        )

        assert ["n:4:chat:u1"] == list(store.snapshot(tenant.id).rates)

    async def test_a_tenant_that_does_not_exist_is_not_found(self, limit_api, store):
        with pytest.raises(TenantNotFound):
            await limit_api.ratelimit(
                OPERATOR,
                tenant_id="ten_missing",
                namespace="c",
                identifier="u",
                limit=5,
                window_seconds=60,
            )

        assert {} == dict(store.snapshot("ten_missing").rates)

    async def test_a_tenant_caller_naming_its_own_tenant_is_checked_like_any_other(
        self, limit_api, tenant
    ):
        answer = await limit_api.ratelimit(
            tenant_principal(tenant.id, P.KEYS_VERIFY),
            tenant_id=tenant.id,
            namespace="chat",
            identifier="u1",
            limit=1,
            window_seconds=60,
        )

        assert answer.success

    async def test_another_tenants_namespace_is_not_found(self, limit_api, tenant, other_tenant):
        with pytest.raises(TenantNotFound):
            await limit_api.ratelimit(
                tenant_principal(tenant.id, P.KEYS_VERIFY),
                tenant_id=other_tenant.id,
                namespace="chat",
                identifier="u1",
                limit=1,
                window_seconds=60,
            )

    @pytest.mark.parametrize(
        "actor",
        [
            pytest.param(lambda tenant_id: tenant_principal(tenant_id, P.KEYS_READ), id="tenant"),
            pytest.param(lambda tenant_id: _platform(P.KEYS_READ), id="platform"),
        ],
    )
    async def test_a_caller_without_keys_verify_is_denied(self, limit_api, store, tenant, actor):
        with pytest.raises(PermissionDenied):
            await limit_api.ratelimit(
                actor(tenant.id),
                tenant_id=None,
                namespace="c",
                identifier="u",
                limit=1,
                window_seconds=60,
            )

    async def test_namespace_and_identifier_cannot_collide_through_the_separator(
        self, limit_api, tenant
    ):
        actor = tenant_principal(tenant.id, P.KEYS_VERIFY)

        first = await limit_api.ratelimit(
            actor, tenant_id=None, namespace="a:b", identifier="c", limit=1, window_seconds=60
        )
        second = await limit_api.ratelimit(
            actor, tenant_id=None, namespace="a", identifier="b:c", limit=1, window_seconds=60
        )

        assert (True, True) == (first.success, second.success)

    async def test_a_zero_cost_peeks_without_consuming(self, limit_api, tenant):
        actor = tenant_principal(tenant.id, P.KEYS_VERIFY)

        peek = await limit_api.ratelimit(
            actor, tenant_id=None, namespace="c", identifier="u", limit=3, window_seconds=60, cost=0
        )
        used = await limit_api.ratelimit(
            actor, tenant_id=None, namespace="c", identifier="u", limit=3, window_seconds=60, cost=2
        )

        assert (True, 3) == (peek.success, peek.report.remaining)
        assert (True, 1) == (used.success, used.report.remaining)

    @pytest.mark.parametrize(
        ("limit", "window_seconds"),
        [(0, 60), (1, 0), (1, 31 * 24 * 3600 + 1)],
        ids=["zero-limit", "zero-window", "window-over-31-days"],
    )
    async def test_out_of_bounds_values_are_refused(self, limit_api, tenant, limit, window_seconds):
        with pytest.raises(InvalidInput):
            await limit_api.ratelimit(
                tenant_principal(tenant.id, P.KEYS_VERIFY),
                tenant_id=None,
                namespace="c",
                identifier="u",
                limit=limit,
                window_seconds=window_seconds,
            )


def _key_id(n: int) -> str:
    return ids.new_id("key", now_ms=1_800_000_000_000, entropy=bytes([n]) * ids.ENTROPY_BYTES)


async def _take_lease(store, tenant_id: str, key_id: str) -> str:
    lease_id = leases.new_lease_id(tenant_id, key_id, b"\x05" * leases.ENTROPY_BYTES)
    answer = await store.apply(
        LimitRequest(tenant_id, lease=LeaseCharge(key_slot(key_id), 1, 60_000, lease_id))
    )
    assert (Outcome.VALID, lease_id) == (answer.outcome, answer.lease_id)
    return lease_id


class TestRelease:
    async def test_a_held_lease_is_given_back_once(self, limit_api, store, tenant):
        lease_id = await _take_lease(store, tenant.id, _key_id(1))
        actor = tenant_principal(tenant.id, P.KEYS_VERIFY)

        first = await limit_api.release(actor, lease_id)
        second = await limit_api.release(actor, lease_id)

        assert (True, False) == (first, second)
        assert {} == dict(store.snapshot(tenant.id).leases.get(key_slot(_key_id(1)), {}))

    async def test_a_platform_caller_releases_any_tenants_lease(self, limit_api, store, tenant):
        lease_id = await _take_lease(store, tenant.id, _key_id(1))

        assert await limit_api.release(_platform(P.KEYS_VERIFY), lease_id)

    @pytest.mark.parametrize(
        "text", ["", "lse_", "not-a-lease", _key_id(1)], ids=["empty", "prefix", "prose", "key-id"]
    )
    async def test_text_that_is_not_a_lease_id_is_not_found(self, limit_api, tenant, text):
        with pytest.raises(LeaseNotFound):
            await limit_api.release(tenant_principal(tenant.id, P.KEYS_VERIFY), text)

    async def test_another_tenants_lease_is_not_found_and_stays_held(
        self, limit_api, store, tenant, other_tenant
    ):
        lease_id = await _take_lease(store, other_tenant.id, _key_id(2))

        with pytest.raises(LeaseNotFound):
            await limit_api.release(tenant_principal(tenant.id, P.KEYS_VERIFY), lease_id)

        assert [lease_id] == list(store.snapshot(other_tenant.id).leases[key_slot(_key_id(2))])

    async def test_a_caller_without_keys_verify_is_denied_and_the_lease_stays_held(
        self, limit_api, store, tenant
    ):
        lease_id = await _take_lease(store, tenant.id, _key_id(3))

        with pytest.raises(PermissionDenied):
            await limit_api.release(tenant_principal(tenant.id, P.KEYS_READ), lease_id)

        assert [lease_id] == list(store.snapshot(tenant.id).leases[key_slot(_key_id(3))])
