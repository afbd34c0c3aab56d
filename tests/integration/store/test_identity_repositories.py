"""Identities through ``SqlUnitOfWork`` on real databases, and the ``limits`` JSON codec."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import MAX_AMOUNT, Credits, Refill, RefillInterval
from keyrack.domain.models import DEFAULT_LEASE_TTL_SECONDS, Identity, Limits
from keyrack.domain.ratelimit import MAX_WINDOW_MS, MIN_WINDOW_MS, RateLimit
from keyrack.errors import Conflict, DuplicateExternalId
from keyrack.store.limits_json import (
    budget_columns,
    credits_columns,
    limits_from_row,
    limits_to_json,
)
from keyrack.store.uow import SqlUnitOfWork
from tests.integration.store.builders import Build

NewUow = Callable[[], SqlUnitOfWork]

RICH = Limits(
    rate_limits=(RateLimit("requests", 100, 60_000), RateLimit("tokens", 10**12, 86_400_000)),
    credits=Credits(
        250, Refill(RefillInterval.MONTHLY, 1000, 31), refilled_at_ms=1_700_000_000_000
    ),
    credits_version=4,
)


@pytest.fixture
def build() -> Build:
    return Build()


def identity_of(build: Build, tenant_id: str, **changes: Any) -> Identity:
    identity = Identity(
        id=build.id("idn"),
        tenant_id=tenant_id,
        external_id="cus_1",
        meta={"plan": "pro"},
        limits=RICH,
        created_at=build.at,
        updated_at=build.at,
    )
    return replace(identity, **changes)


def _round_trip(limits: Limits) -> Limits:
    """Through the codec and a real JSON encoding, as a database column would."""
    encoded = limits_to_json(limits)
    stored = None if encoded is None else json.loads(json.dumps(encoded, allow_nan=False))
    credits, budget = credits_columns(limits), budget_columns(limits)
    return limits_from_row(
        stored,
        credits["credits_remaining"],
        credits["credits_refilled_at_ms"],
        credits["credits_version"] or 0,
        budget["budget_spent"],
        budget["budget_period_start_ms"],
    )


units = st.integers(0, MAX_AMOUNT)
refills = st.one_of(
    st.just(Refill()),
    st.builds(Refill, st.just(RefillInterval.NEVER), units),
    st.builds(Refill, st.just(RefillInterval.DAILY), units),
    st.builds(Refill, st.just(RefillInterval.MONTHLY), units, st.integers(1, 31)),
)
rate_limit_lists = st.lists(
    st.builds(
        RateLimit,
        st.text(min_size=1, max_size=20),
        st.integers(1, MAX_AMOUNT),
        st.integers(MIN_WINDOW_MS, MAX_WINDOW_MS),
    ),
    max_size=4,
    unique_by=lambda limit: limit.name,
)
limits_values = st.builds(
    Limits,
    rate_limits=rate_limit_lists.map(tuple),
    credits=st.none() | st.builds(Credits, st.none() | units, refills, units),
    credits_version=st.integers(0, 2**31 - 1),
    budget=st.none()
    | st.builds(Budget, units, st.sampled_from(BudgetPeriod), st.integers(0, 10_000), units, units),
    max_concurrency=st.none() | st.integers(1, 1_000_000),
    lease_ttl_seconds=st.integers(1, 86_400),
)


class TestLimitsJson:
    @given(limits=limits_values)
    def test_every_limits_value_round_trips(self, limits: Limits) -> None:
        assert limits == _round_trip(limits)

    def test_defaults_encode_as_null(self) -> None:
        assert limits_to_json(Limits()) is None
        assert limits_to_json(Limits(credits_version=9)) is None
        assert Limits(credits_version=3) == limits_from_row(None, None, None, 3)

    def test_members_are_written_in_the_documented_shape(self) -> None:
        limits = Limits(
            rate_limits=(RateLimit("requests", 100, 60_000), RateLimit("burst", 5, 1_500)),
            credits=Credits(10, Refill(RefillInterval.DAILY, 10)),
            budget=Budget(5_000_000, BudgetPeriod.MONTH, 7_500),
            max_concurrency=4,
            lease_ttl_seconds=30,
        )

        assert {
            "rate_limits": [
                {"name": "requests", "limit": 100, "window_seconds": 60},
                {"name": "burst", "limit": 5, "window_ms": 1_500},
            ],
            "credits": {"refill": {"interval": "daily", "amount": 10, "day": None}},
            "budget": {"limit": 5_000_000, "period": "month", "soft_threshold_bp": 7_500},
            "max_concurrency": 4,
            "lease_ttl_seconds": 30,
        } == limits_to_json(limits)

    def test_absent_members_read_as_defaults_and_unknown_ones_are_ignored(self) -> None:
        data = {
            "credits": {},
            "budget": {"limit": 7},
            "future": {"anything": True},
            "rate_limits": [{"name": "r", "limit": 1, "window_seconds": 1}],
        }

        limits = limits_from_row(data, 3, None, 2, None, None)

        assert (
            Limits(
                rate_limits=(RateLimit("r", 1, 1000),),
                credits=Credits(3, Refill(), 0),
                credits_version=2,
                budget=Budget(7),
                lease_ttl_seconds=DEFAULT_LEASE_TTL_SECONDS,
            )
            == limits
        )

    def test_snapshot_columns_without_credits_are_ignored(self) -> None:
        assert limits_from_row({"max_concurrency": 2}, 99, 5, 1).credits is None

    def test_columns_of_empty_limits_are_null(self) -> None:
        assert {
            "credits_remaining": None,
            "credits_refilled_at_ms": None,
            "credits_version": 0,
        } == credits_columns(Limits())
        assert {"budget_spent": None, "budget_period_start_ms": None} == budget_columns(Limits())


anyio_test = pytest.mark.anyio


async def _tenants(new_uow: NewUow, build: Build, n: int = 1) -> list[str]:
    tenants = [build.tenant() for _ in range(n)]
    async with new_uow() as uow:
        for tenant in tenants:
            await uow.tenants.add(tenant)
        await uow.commit()
    return [t.id for t in tenants]


async def _add(new_uow: NewUow, *identities: Identity) -> None:
    async with new_uow() as uow:
        for identity in identities:
            await uow.identities(identity.tenant_id).add(identity)
        await uow.commit()


@anyio_test
class TestIdentityRepository:
    @pytest.mark.parametrize(
        "limits",
        [RICH, Limits(), Limits(credits=Credits(None, Refill(RefillInterval.DAILY, 5)))],
        ids=["rich", "none", "unlimited-credits"],
    )
    async def test_added_identity_reads_back_equal(
        self, new_uow: NewUow, build: Build, limits: Limits
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id, limits=limits)
        await _add(new_uow, identity)

        async with new_uow() as uow:
            repo = uow.identities(tenant_id)
            assert identity == await repo.get(identity.id)
            assert identity == await repo.by_external_id("cus_1")
            assert await repo.by_external_id("cus_2") is None
            assert await repo.get(build.id("idn")) is None

    async def test_a_taken_external_id_raises_and_rolls_back(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        first = identity_of(build, tenant_id)
        await _add(new_uow, first)

        with pytest.raises(DuplicateExternalId):
            async with new_uow() as uow:
                await uow.identities(tenant_id).add(identity_of(build, tenant_id))

        async with new_uow() as uow:
            assert [first] == await uow.identities(tenant_id).list(limit=10, after=None)

    async def test_list_orders_by_id_continues_after_the_cursor_and_filters(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        made = [identity_of(build, tenant_id, external_id=f"c{n}") for n in range(5)]
        await _add(new_uow, *reversed(made))

        async with new_uow() as uow:
            repo = uow.identities(tenant_id)
            first = await repo.list(limit=2, after=None)
            rest = await repo.list(limit=10, after=first[-1].id)
            only = await repo.list(limit=10, after=None, external_id="c3")
            only_after = await repo.list(limit=10, after=made[3].id, external_id="c3")
        assert (made[:2], made[2:], [made[3]], []) == (first, rest, only, only_after)

    async def test_update_writes_the_configuration_but_not_the_credits_snapshot(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id)
        await _add(new_uow, identity)
        new_credits = Credits(1, Refill(RefillInterval.DAILY, 77), refilled_at_ms=5)
        changed = replace(
            identity,
            external_id="cus_9",
            meta={"plan": "team"},
            limits=Limits(rate_limits=(), credits=new_credits, credits_version=99),
            updated_at=build.later(60),
            version=2,
        )

        async with new_uow() as uow:
            assert await uow.identities(tenant_id).update(changed, expected_version=1)
            await uow.commit()

        kept = Credits(250, new_credits.refill, RICH.credits.refilled_at_ms)  # type: ignore[union-attr]  # RICH has credits
        async with new_uow() as uow:
            assert replace(
                changed, limits=Limits(credits=kept, credits_version=4)
            ) == await uow.identities(tenant_id).get(identity.id)

    async def test_update_with_a_stale_version_returns_false_and_writes_nothing(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id)
        await _add(new_uow, identity)

        async with new_uow() as uow:
            written = await uow.identities(tenant_id).update(
                replace(identity, meta={}, version=3), expected_version=2
            )
            await uow.commit()

        async with new_uow() as uow:
            assert (False, identity) == (written, await uow.identities(tenant_id).get(identity.id))

    async def test_update_to_a_taken_external_id_raises(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        first = identity_of(build, tenant_id, external_id="a")
        second = identity_of(build, tenant_id, external_id="b")
        await _add(new_uow, first, second)

        with pytest.raises(DuplicateExternalId):
            async with new_uow() as uow:
                await uow.identities(tenant_id).update(
                    replace(second, external_id="a", version=2), expected_version=1
                )

        async with new_uow() as uow:
            assert second == await uow.identities(tenant_id).get(second.id)

    async def test_write_credits_replaces_the_snapshot_and_version(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id)
        await _add(new_uow, identity)

        async with new_uow() as uow:
            await uow.identities(tenant_id).write_credits(
                identity.id, remaining=None, refilled_at_ms=123, version=5
            )
            await uow.commit()

        async with new_uow() as uow:
            stored = await uow.identities(tenant_id).get(identity.id)
        assert stored is not None
        assert (Credits(None, RICH.credits.refill, 123), 5) == (  # type: ignore[union-attr]  # RICH has credits
            stored.limits.credits,
            stored.limits.credits_version,
        )

    async def test_remove_reports_whether_it_existed(self, new_uow: NewUow, build: Build) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id)
        await _add(new_uow, identity)

        async with new_uow() as uow:
            removed = await uow.identities(tenant_id).remove(identity.id)
            removed_again = await uow.identities(tenant_id).remove(identity.id)
            await uow.commit()

        async with new_uow() as uow:
            gone = await uow.identities(tenant_id).get(identity.id)
        assert (True, False, None) == (removed, removed_again, gone)

    async def test_remove_refuses_while_a_key_references_it(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        identity = identity_of(build, tenant_id)
        await _add(new_uow, identity)
        key = build.key(tenant_id, identity_id=identity.id)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()

        with pytest.raises(Conflict):
            async with new_uow() as uow:
                await uow.identities(tenant_id).remove(identity.id)

        async with new_uow() as uow:
            assert identity == await uow.identities(tenant_id).get(identity.id)

    async def test_a_key_cannot_reference_another_tenants_identity(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await _tenants(new_uow, build, 2)
        identity = identity_of(build, theirs)
        await _add(new_uow, identity)
        key = build.key(mine, identity_id=identity.id)

        with pytest.raises(Conflict):
            async with new_uow() as uow:
                await uow.keys(mine).add(key, build.secret(key))

    async def test_tenant_removal_cascades_to_identities(
        self, new_uow: NewUow, build: Build
    ) -> None:
        [tenant_id] = await _tenants(new_uow, build)
        await _add(new_uow, identity_of(build, tenant_id))

        async with new_uow() as uow:
            await uow.tenants.remove(tenant_id)
            await uow.commit()

        async with new_uow() as uow:
            assert [] == await uow.identities(tenant_id).list(limit=10, after=None)


@anyio_test
class TestIdentityTenancy:
    async def test_no_statement_reaches_another_tenants_identity(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await _tenants(new_uow, build, 2)
        their_identity = identity_of(build, theirs, external_id="shared")
        my_identity = identity_of(build, mine, external_id="shared")
        await _add(new_uow, their_identity, my_identity)

        async with new_uow() as uow:
            repo = uow.identities(mine)
            got = await repo.get(their_identity.id)
            listed = await repo.list(limit=10, after=None)
            by_external = await repo.by_external_id("shared")
            updated = await repo.update(
                replace(their_identity, meta={"hacked": True}, version=2), expected_version=1
            )
            await repo.write_credits(their_identity.id, remaining=0, refilled_at_ms=0, version=9)
            removed = await repo.remove(their_identity.id)
            await uow.commit()

        assert (None, [my_identity], my_identity, False, False) == (
            got,
            listed,
            by_external,
            updated,
            removed,
        )
        async with new_uow() as uow:
            assert their_identity == await uow.identities(theirs).get(their_identity.id)

    async def test_add_refuses_an_identity_of_another_tenant(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = await _tenants(new_uow, build, 2)

        with pytest.raises(ValueError, match="another tenant"):
            async with new_uow() as uow:
                await uow.identities(mine).add(identity_of(build, theirs))


@anyio_test
class TestKeysOfAnIdentity:
    async def _setup(self, new_uow: NewUow, build: Build) -> tuple[str, Identity, list[str]]:
        """An identity with two keys, a key of another identity, and another tenant's key."""
        tenant_id, other_tenant = await _tenants(new_uow, build, 2)
        identity = identity_of(build, tenant_id)
        other = identity_of(build, tenant_id, external_id="other")
        foreign = identity_of(build, other_tenant)
        await _add(new_uow, identity, other, foreign)
        keys = [
            build.key(tenant_id, identity_id=identity.id),
            build.key(tenant_id, identity_id=identity.id),
            build.key(tenant_id, identity_id=other.id),
            build.key(tenant_id),
            build.key(other_tenant, identity_id=foreign.id),
        ]
        async with new_uow() as uow:
            for key in keys:
                await uow.keys(key.tenant_id).add(key, build.secret(key))
            await uow.commit()
        return tenant_id, identity, [k.id for k in keys]

    async def test_ids_with_identity_lists_only_that_identitys_keys(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id, identity, key_ids = await self._setup(new_uow, build)

        async with new_uow() as uow:
            found = await uow.keys(tenant_id).ids_with_identity(identity.id)
            elsewhere = await uow.keys(tenant_id).ids_with_identity(build.id("idn"))
        assert (key_ids[:2], []) == (found, elsewhere)

    async def test_detach_takes_the_identity_off_its_keys_and_bumps_their_version(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id, identity, key_ids = await self._setup(new_uow, build)

        async with new_uow() as uow:
            detached = await uow.keys(tenant_id).detach_identity(identity.id)
            await uow.commit()

        async with new_uow() as uow:
            keys = [await uow.keys(tenant_id).get(key_id) for key_id in key_ids[:4]]
            removed = await uow.identities(tenant_id).remove(identity.id)
            await uow.commit()
        assert key_ids[:2] == detached
        assert [None, None] == [k.identity_id for k in keys[:2] if k is not None]
        assert [2, 2, 1, 1] == [k.version for k in keys if k is not None]
        assert all(k.updated_at != build.at for k in keys[:2] if k is not None)
        assert removed

    async def test_detach_in_another_tenant_changes_nothing(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id, identity, key_ids = await self._setup(new_uow, build)
        other_tenant = build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(other_tenant)
            detached = await uow.keys(other_tenant.id).detach_identity(identity.id)
            await uow.commit()

        async with new_uow() as uow:
            key = await uow.keys(tenant_id).get(key_ids[0])
        assert [] == detached
        assert key is not None
        assert (identity.id, 1) == (key.identity_id, key.version)
