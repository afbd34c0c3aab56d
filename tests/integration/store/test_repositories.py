"""Repository contract through ``SqlUnitOfWork`` on real databases (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from keyrack.domain.budget import Budget, BudgetPeriod
from keyrack.domain.credits import Credits, Refill, RefillInterval
from keyrack.domain.models import KeyStatus, Limits
from keyrack.domain.policy import KeyPolicy
from keyrack.domain.ratelimit import RateLimit
from keyrack.errors import Conflict, DuplicateSlug
from keyrack.services.ports import KeyFilter, LastUsed
from keyrack.store.tables import ApiKeyRow, KeySecretRow, RootKeyRow, ServiceAccountRow
from keyrack.store.uow import SqlUnitOfWork
from tests.integration.store.builders import Build, digest_of

pytestmark = pytest.mark.anyio

NewUow = Callable[[], SqlUnitOfWork]

TRICKY_TEXT = [
    pytest.param("Robert'); DROP TABLE tenants;--", id="sql-injection"),
    pytest.param("' OR '1'='1", id="sql-tautology"),
    pytest.param("100% _match_ \\ backslash", id="like-wildcards"),
    pytest.param("名前 🔑 ключ ñ", id="unicode"),
    pytest.param("\u202eevil\u202c", id="bidi-override"),
    pytest.param('"quoted" `ticks` $$dollar$$', id="quotes"),
]


@pytest.fixture
def build() -> Build:
    return Build()


async def _count(uow: SqlUnitOfWork, row: type, tenant_id: str) -> int:
    stmt = select(func.count()).select_from(row).where(row.tenant_id == tenant_id)  # type: ignore[attr-defined]  # every row class here has tenant_id
    return int(await uow.session.scalar(stmt) or 0)


async def _secret_ends(uow: SqlUnitOfWork, key_id: str) -> dict[str, datetime | None]:
    rows = await uow.session.execute(
        select(KeySecretRow.id, KeySecretRow.expires_at).where(KeySecretRow.key_id == key_id)
    )
    return dict(rows.tuples().all())


class TestTenantRepository:
    async def test_added_tenant_reads_back_equal(self, new_uow: NewUow, build: Build) -> None:
        tenant = build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.commit()
        async with new_uow() as uow:
            assert tenant == await uow.tenants.get(tenant.id)

    async def test_get_of_unknown_id_is_none(self, new_uow: NewUow, build: Build) -> None:
        async with new_uow() as uow:
            assert await uow.tenants.get(build.id("ten")) is None

    async def test_list_orders_by_id_and_continues_after_the_cursor(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenants = [build.tenant() for _ in range(5)]
        async with new_uow() as uow:
            for tenant in reversed(tenants):
                await uow.tenants.add(tenant)
            await uow.commit()
        async with new_uow() as uow:
            first = await uow.tenants.list(limit=2, after=None, among=None)
            second = await uow.tenants.list(limit=2, after=first[-1].id, among=None)
            rest = await uow.tenants.list(limit=10, after=second[-1].id, among=None)
        assert tenants[:2] == first
        assert tenants[2:4] == second
        assert tenants[4:] == rest

    async def test_list_only_restricts_to_that_tenant(self, new_uow: NewUow, build: Build) -> None:
        tenants = [build.tenant() for _ in range(3)]
        async with new_uow() as uow:
            for tenant in tenants:
                await uow.tenants.add(tenant)
            await uow.commit()
        async with new_uow() as uow:
            only = await uow.tenants.list(limit=10, after=None, among=[tenants[1].id])
            after_it = await uow.tenants.list(limit=10, after=tenants[1].id, among=[tenants[1].id])
            before_it = await uow.tenants.list(limit=10, after=tenants[0].id, among=[tenants[1].id])
        assert [tenants[1]] == only
        assert [] == after_it
        assert [tenants[1]] == before_it

    async def test_update_writes_name_slug_prefix_and_update_time(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant = build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.commit()
        changed = replace(
            tenant, name="Renamed", slug="renamed", key_prefix="pk", updated_at=build.later(60)
        )
        async with new_uow() as uow:
            await uow.tenants.update(changed)
            await uow.commit()
        async with new_uow() as uow:
            assert changed == await uow.tenants.get(tenant.id)

    async def test_add_with_a_taken_slug_raises_duplicate_slug(
        self, new_uow: NewUow, build: Build
    ) -> None:
        first = build.tenant(slug="acme")
        async with new_uow() as uow:
            await uow.tenants.add(first)
            await uow.commit()
        with pytest.raises(DuplicateSlug):
            async with new_uow() as uow:
                await uow.tenants.add(build.tenant(slug="acme"))
        async with new_uow() as uow:
            assert [first] == await uow.tenants.list(limit=10, after=None, among=None)

    async def test_update_to_a_taken_slug_raises_duplicate_slug(
        self, new_uow: NewUow, build: Build
    ) -> None:
        first, second = build.tenant(slug="first"), build.tenant(slug="second")
        async with new_uow() as uow:
            await uow.tenants.add(first)
            await uow.tenants.add(second)
            await uow.commit()
        with pytest.raises(DuplicateSlug):
            async with new_uow() as uow:
                await uow.tenants.update(replace(second, slug="first"))
        async with new_uow() as uow:
            assert second == await uow.tenants.get(second.id)

    async def test_remove_reports_whether_the_tenant_existed(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant = build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.commit()
        async with new_uow() as uow:
            removed = await uow.tenants.remove(tenant.id)
            await uow.commit()
        async with new_uow() as uow:
            removed_again = await uow.tenants.remove(tenant.id)
            gone = await uow.tenants.get(tenant.id)
        assert (True, False, None) == (removed, removed_again, gone)

    async def test_remove_cascades_to_keys_secrets_accounts_and_root_keys(
        self, new_uow: NewUow, build: Build
    ) -> None:
        doomed, kept = build.tenant(), build.tenant()
        owned = {}
        async with new_uow() as uow:
            for tenant in (doomed, kept):
                await uow.tenants.add(tenant)
                key = build.key(tenant.id)
                secret = build.secret(key)
                await uow.keys(tenant.id).add(key, secret)
                await uow.keys(tenant.id).add_secret(build.secret(key))
                accounts = uow.service_accounts(tenant.id)
                account = build.account(tenant.id)
                await accounts.add(account)
                root_key = build.root_key(account)
                await accounts.add_root_key(
                    root_key, digest=digest_of(root_key.id), pepper_version=1
                )
                owned[tenant.id] = (key, secret, account, root_key)
            await uow.commit()
        async with new_uow() as uow:
            assert await uow.tenants.remove(doomed.id)
            await uow.commit()

        rows = (ApiKeyRow, KeySecretRow, ServiceAccountRow, RootKeyRow)
        async with new_uow() as uow:
            doomed_counts = [await _count(uow, row, doomed.id) for row in rows]
            kept_counts = [await _count(uow, row, kept.id) for row in rows]
            key, secret, account, root_key = owned[doomed.id]
            found_secret = await uow.secrets.find([secret.digest])
            found_root = await uow.root_keys.find([digest_of(root_key.id)])
            kept_key, kept_secret, _, kept_root = owned[kept.id]
            kept_found = await uow.secrets.find([kept_secret.digest])
            kept_root_found = await uow.root_keys.find([digest_of(kept_root.id)])
        assert [0, 0, 0, 0] == doomed_counts
        assert [1, 2, 1, 1] == kept_counts
        assert (None, None) == (found_secret, found_root)
        assert kept_found is not None
        assert kept_key.id == kept_found.key_id
        assert kept_root_found is not None
        assert kept_root.id == kept_root_found.root_key.id


class TestKeyRepository:
    async def _tenant(self, new_uow: NewUow, build: Build) -> str:
        tenant = build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.commit()
        return tenant.id

    async def test_added_key_reads_back_equal(self, new_uow: NewUow, build: Build) -> None:
        tenant_id = await self._tenant(new_uow, build)
        identity = build.identity(tenant_id)
        async with new_uow() as uow:
            await uow.identities(tenant_id).add(identity)
            await uow.commit()
        key = build.key(
            tenant_id,
            description="for the checkout service",
            expires_at=build.later(86_400),
            owner_id="user_42",
            identity_id=identity.id,
            meta={"plan": "pro", "limits": {"rps": 10, "burst": [1, 2.5, None, True]}},
            permissions=("orders.read", "orders.write"),
            roles=("admin",),
            system=True,
            recoverable=True,
            version=3,
            policy=KeyPolicy(
                ip_allowlist=("10.0.0.0/8",),
                allowed_origins=("https://app.example.com",),
                allowed_endpoints=("POST /v1/chat/*",),
                blocked_endpoints=("* /v1/admin/*",),
                require_tls=True,
                max_tokens_per_request=4096,
            ),
            limits=Limits(
                rate_limits=(RateLimit("requests", 100, 60_000),),
                credits=Credits(
                    250, Refill(RefillInterval.DAILY, 1000), refilled_at_ms=1_800_000_000_000
                ),
                credits_version=2,
                budget=Budget(
                    5_000_000, BudgetPeriod.MONTH, spent=1_234, period_start_ms=1_798_761_600_000
                ),
                max_concurrency=4,
                lease_ttl_seconds=30,
            ),
        )
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()
        async with new_uow() as uow:
            assert key == await uow.keys(tenant_id).get(key.id)

    async def test_get_of_unknown_key_is_none(self, new_uow: NewUow, build: Build) -> None:
        tenant_id = await self._tenant(new_uow, build)
        async with new_uow() as uow:
            assert await uow.keys(tenant_id).get(build.id("key")) is None

    async def test_list_orders_by_id_and_continues_after_the_cursor(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        keys = [build.key(tenant_id, name=f"k{i}") for i in range(5)]
        async with new_uow() as uow:
            for key in reversed(keys):
                await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()
        everything = KeyFilter()
        async with new_uow() as uow:
            repo = uow.keys(tenant_id)
            first = await repo.list(limit=2, after=None, where=everything)
            second = await repo.list(limit=2, after=first[-1].id, where=everything)
            rest = await repo.list(limit=10, after=second[-1].id, where=everything)
        assert keys[:2] == first
        assert keys[2:4] == second
        assert keys[4:] == rest

    @pytest.mark.parametrize(
        ("where", "expected_names"),
        [
            (KeyFilter(), ["active-alice", "disabled-bob", "revoked-alice"]),
            (KeyFilter(status=KeyStatus.DISABLED), ["disabled-bob"]),
            (KeyFilter(owner_id="alice"), ["active-alice", "revoked-alice"]),
            (KeyFilter(status=KeyStatus.ACTIVE, owner_id="alice"), ["active-alice"]),
            (KeyFilter(owner_id="nobody"), []),
            (
                KeyFilter(include_system=True),
                ["active-alice", "disabled-bob", "revoked-alice", "system-alice"],
            ),
            (KeyFilter(include_system=True, owner_id="bob"), ["disabled-bob"]),
        ],
        ids=[
            "no-filter-hides-system",
            "status",
            "owner",
            "status-and-owner",
            "owner-without-keys",
            "include-system",
            "include-system-and-owner",
        ],
    )
    async def test_list_applies_filters(
        self, new_uow: NewUow, build: Build, where: KeyFilter, expected_names: list[str]
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        keys = [
            build.key(tenant_id, name="active-alice", owner_id="alice"),
            build.key(tenant_id, name="disabled-bob", owner_id="bob", status=KeyStatus.DISABLED),
            build.key(tenant_id, name="revoked-alice", owner_id="alice", status=KeyStatus.REVOKED),
            build.key(tenant_id, name="system-alice", owner_id="alice", system=True),
        ]
        async with new_uow() as uow:
            for key in keys:
                await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()
        async with new_uow() as uow:
            listed = await uow.keys(tenant_id).list(limit=10, after=None, where=where)
        assert expected_names == [key.name for key in listed]

    async def test_update_with_the_stored_version_writes(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()
        changed = replace(
            key,
            name="renamed",
            status=KeyStatus.REVOKED,
            revoked_at=build.later(5),
            updated_at=build.later(5),
            version=key.version + 1,
        )
        async with new_uow() as uow:
            written = await uow.keys(tenant_id).update(changed, expected_version=key.version)
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(tenant_id).get(key.id)
        assert written
        assert changed == stored

    async def test_update_with_a_stale_version_returns_false_and_writes_nothing(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id, version=4)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.commit()
        async with new_uow() as uow:
            written = await uow.keys(tenant_id).update(
                replace(key, name="lost", version=4), expected_version=3
            )
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(tenant_id).get(key.id)
        assert not written
        assert key == stored

    async def test_remove_deletes_the_key_and_its_secrets(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key, other = build.key(tenant_id), build.key(tenant_id)
        first, second = build.secret(key), build.secret(key)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, first)
            await uow.keys(tenant_id).add_secret(second)
            await uow.keys(tenant_id).add(other, build.secret(other))
            await uow.commit()
        async with new_uow() as uow:
            removed = await uow.keys(tenant_id).remove(key.id)
            await uow.commit()
        async with new_uow() as uow:
            removed_again = await uow.keys(tenant_id).remove(key.id)
            stored = await uow.keys(tenant_id).get(key.id)
            found = await uow.secrets.find([first.digest, second.digest])
            ends = await _secret_ends(uow, key.id)
            survivor = await uow.keys(tenant_id).get(other.id)
        assert (True, False, None, None, {}) == (removed, removed_again, stored, found, ends)
        assert other == survivor

    async def test_add_secret_makes_the_key_findable_by_its_digest(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id)
        extra = build.secret(key, expires_at=build.later(30))
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, build.secret(key))
            await uow.keys(tenant_id).add_secret(extra)
            await uow.commit()
        async with new_uow() as uow:
            record = await uow.secrets.find([digest_of("nothing"), extra.digest])
        assert record is not None
        assert (key.id, tenant_id, extra.id, build.later(30).timestamp()) == (
            record.key_id,
            record.tenant_id,
            record.secret_id,
            record.valid_until,
        )

    async def test_a_second_secret_with_a_taken_digest_is_a_conflict(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id)
        secret = build.secret(key)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, secret)
            await uow.commit()
        with pytest.raises(Conflict):
            async with new_uow() as uow:
                await uow.keys(tenant_id).add_secret(replace(secret, id=build.id("sec")))

    async def test_retire_secrets_ends_the_current_secret_at_grace_end(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id)
        current = build.secret(key)
        async with new_uow() as uow:
            await uow.keys(tenant_id).add(key, current)
            await uow.keys(tenant_id).retire_secrets(
                key.id, grace_end=build.later(60), now=build.at
            )
            await uow.commit()
        async with new_uow() as uow:
            assert {current.id: build.later(60)} == await _secret_ends(uow, key.id)

    async def test_retire_secrets_ends_an_older_secret_in_grace_now(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        key = build.key(tenant_id)
        expired = build.secret(key, expires_at=build.later(-10))
        in_grace = build.secret(key, expires_at=build.later(50))
        current = build.secret(key)
        async with new_uow() as uow:
            repo = uow.keys(tenant_id)
            await repo.add(key, expired)
            await repo.add_secret(in_grace)
            await repo.add_secret(current)
            await repo.retire_secrets(key.id, grace_end=build.later(60), now=build.later(1))
            await uow.commit()
        async with new_uow() as uow:
            ends = await _secret_ends(uow, key.id)
        assert {
            expired.id: build.later(-10),
            in_grace.id: build.later(1),
            current.id: build.later(60),
        } == ends

    async def test_add_refuses_a_key_or_secret_of_another_tenant(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant_id = await self._tenant(new_uow, build)
        other_id = await self._tenant(new_uow, build)
        foreign = build.key(other_id)
        mine = build.key(tenant_id)
        async with new_uow() as uow:
            repo = uow.keys(tenant_id)
            with pytest.raises(ValueError, match="another tenant"):
                await repo.add(foreign, build.secret(foreign))
            with pytest.raises(ValueError, match="another tenant"):
                await repo.add(mine, build.secret(foreign))
            with pytest.raises(ValueError, match="another tenant"):
                await repo.add_secret(build.secret(foreign))


class TestTenancy:
    """A key repository bound to tenant A never reads, changes or deletes tenant B's rows."""

    async def _two_tenants(self, new_uow: NewUow, build: Build):
        mine, theirs = build.tenant(), build.tenant()
        their_key = build.key(theirs.id, name="theirs", owner_id="alice")
        their_secret = build.secret(their_key)
        my_key = build.key(mine.id, name="mine", owner_id="alice")
        async with new_uow() as uow:
            await uow.tenants.add(mine)
            await uow.tenants.add(theirs)
            await uow.keys(theirs.id).add(their_key, their_secret)
            await uow.keys(mine.id).add(my_key, build.secret(my_key))
            await uow.commit()
        return mine.id, my_key, their_key, their_secret

    async def test_get_does_not_return_another_tenants_key(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, _ = await self._two_tenants(new_uow, build)
        async with new_uow() as uow:
            assert await uow.keys(mine).get(their_key.id) is None

    async def test_list_returns_only_this_tenants_keys(self, new_uow: NewUow, build: Build) -> None:
        mine, my_key, _, _ = await self._two_tenants(new_uow, build)
        async with new_uow() as uow:
            repo = uow.keys(mine)
            listed = await repo.list(limit=10, after=None, where=KeyFilter(include_system=True))
            by_owner = await repo.list(limit=10, after=None, where=KeyFilter(owner_id="alice"))
        assert [my_key] == listed
        assert [my_key] == by_owner

    async def test_update_does_not_change_another_tenants_key(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, _ = await self._two_tenants(new_uow, build)
        hijacked = replace(their_key, tenant_id=mine, name="hijacked", status=KeyStatus.REVOKED)
        async with new_uow() as uow:
            written = await uow.keys(mine).update(hijacked, expected_version=their_key.version)
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(their_key.tenant_id).get(their_key.id)
        assert not written
        assert their_key == stored

    async def test_remove_does_not_delete_another_tenants_key_or_secrets(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, their_secret = await self._two_tenants(new_uow, build)
        async with new_uow() as uow:
            removed = await uow.keys(mine).remove(their_key.id)
            await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(their_key.tenant_id).get(their_key.id)
            record = await uow.secrets.find([their_secret.digest])
        assert not removed
        assert their_key == stored
        assert record is not None
        assert their_secret.id == record.secret_id

    async def test_retire_secrets_does_not_touch_another_tenants_secrets(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, their_secret = await self._two_tenants(new_uow, build)
        async with new_uow() as uow:
            await uow.keys(mine).retire_secrets(
                their_key.id, grace_end=build.at, now=build.later(-60)
            )
            await uow.commit()
        async with new_uow() as uow:
            assert {their_secret.id: None} == await _secret_ends(uow, their_key.id)

    async def test_add_secret_refuses_a_secret_of_another_tenant(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, their_secret = await self._two_tenants(new_uow, build)
        async with new_uow() as uow:
            with pytest.raises(ValueError, match="another tenant"):
                await uow.keys(mine).add_secret(build.secret(their_key))
        async with new_uow() as uow:
            assert {their_secret.id: None} == await _secret_ends(uow, their_key.id)

    async def test_add_secret_refuses_another_tenants_key_id(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, _, their_key, _ = await self._two_tenants(new_uow, build)
        planted = replace(build.secret(their_key), tenant_id=mine)

        async def plant() -> None:
            async with new_uow() as uow:
                await uow.keys(mine).add_secret(planted)
                await uow.commit()

        with pytest.raises((ValueError, Conflict)):
            await plant()


class TestServiceAccountTenancy:
    async def test_accounts_and_root_keys_stay_in_their_scope(
        self, new_uow: NewUow, build: Build
    ) -> None:
        mine, theirs = build.tenant(), build.tenant()
        their_account = build.account(theirs.id)
        their_root = build.root_key(their_account)
        async with new_uow() as uow:
            await uow.tenants.add(mine)
            await uow.tenants.add(theirs)
            await uow.service_accounts(theirs.id).add(their_account)
            await uow.service_accounts(theirs.id).add_root_key(
                their_root, digest=digest_of(their_root.id), pepper_version=1
            )
            await uow.commit()
        async with new_uow() as uow:
            for scope in (mine.id, None):
                repo = uow.service_accounts(scope)
                assert await repo.get(their_account.id) is None
                assert [] == await repo.list(limit=10, after=None)
                assert await repo.get_root_key(their_account.id, their_root.id) is None
                assert [] == await repo.list_root_keys(their_account.id)
                await repo.revoke_root_key(their_root.id, at=build.at)
            await uow.commit()
        async with new_uow() as uow:
            assert [their_root] == await uow.service_accounts(theirs.id).list_root_keys(
                their_account.id
            )


class TestUnitOfWork:
    async def test_leaving_without_commit_writes_nothing(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant = build.tenant()
        key = build.key(tenant.id)
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.keys(tenant.id).add(key, build.secret(key))
        async with new_uow() as uow:
            assert await uow.tenants.get(tenant.id) is None
            assert await _count(uow, ApiKeyRow, tenant.id) == 0

    async def test_an_error_inside_rolls_back_and_propagates_unchanged(
        self, new_uow: NewUow, build: Build
    ) -> None:
        tenant = build.tenant()

        class Boom(Exception):
            pass

        async def fail_midway() -> None:
            async with new_uow() as uow:
                await uow.tenants.add(tenant)
                raise Boom

        with pytest.raises(Boom):
            await fail_midway()
        async with new_uow() as uow:
            assert await uow.tenants.get(tenant.id) is None

    async def test_changes_after_commit_are_rolled_back(
        self, new_uow: NewUow, build: Build
    ) -> None:
        kept, dropped = build.tenant(), build.tenant()
        async with new_uow() as uow:
            await uow.tenants.add(kept)
            await uow.commit()
            await uow.tenants.add(dropped)
        async with new_uow() as uow:
            assert [kept] == await uow.tenants.list(limit=10, after=None, among=None)

    async def test_the_session_is_unusable_outside_async_with(self, new_uow: NewUow) -> None:
        uow = new_uow()
        with pytest.raises(RuntimeError, match="outside 'async with'"):
            uow.keys("ten_x")


class TestRoundTrip:
    async def test_timestamps_come_back_aware_utc_at_the_same_instant(
        self, new_uow: NewUow, build: Build
    ) -> None:
        plus_two = timezone(timedelta(hours=2))
        created = datetime(2027, 3, 1, 12, 30, 15, 123456, tzinfo=plus_two)
        tenant = replace(build.tenant(), created_at=created, updated_at=created)
        key = build.key(
            tenant.id,
            created_at=created,
            updated_at=created,
            expires_at=datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            revoked_at=created + timedelta(microseconds=1),
        )
        used = LastUsed(tenant_id=tenant.id, key_id=key.id, at=created + timedelta(days=1))
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.keys(tenant.id).add(key, build.secret(key))
            await uow.usage.write_last_used([used])
            await uow.commit()
        async with new_uow() as uow:
            stored_tenant = await uow.tenants.get(tenant.id)
            stored_key = await uow.keys(tenant.id).get(key.id)
        assert stored_tenant is not None
        assert stored_key is not None
        moments = [
            stored_tenant.created_at,
            stored_tenant.updated_at,
            stored_key.created_at,
            stored_key.updated_at,
            stored_key.expires_at,
            stored_key.revoked_at,
            stored_key.last_used_at,
        ]
        assert [UTC] * len(moments) == [m.tzinfo if m else None for m in moments]
        assert datetime(2027, 3, 1, 10, 30, 15, 123456, tzinfo=UTC) == stored_tenant.created_at
        assert replace(key, last_used_at=used.at) == stored_key

    async def test_last_used_at_only_moves_forward(self, new_uow: NewUow, build: Build) -> None:
        tenant = build.tenant()
        key = build.key(tenant.id)
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.keys(tenant.id).add(key, build.secret(key))
            await uow.commit()
        for seconds in (60, 30, 90, 10):
            async with new_uow() as uow:
                at = build.later(seconds)
                await uow.usage.write_last_used(
                    [LastUsed(tenant_id=tenant.id, key_id=key.id, at=at)]
                )
                await uow.commit()
        async with new_uow() as uow:
            stored = await uow.keys(tenant.id).get(key.id)
        assert stored is not None
        assert build.later(90) == stored.last_used_at

    async def test_a_naive_timestamp_is_refused(self, new_uow: NewUow, build: Build) -> None:
        naive = datetime(2027, 1, 1)  # noqa: DTZ001  # the refused case itself
        tenant = replace(build.tenant(), created_at=naive)
        with pytest.raises(StatementError, match="naive datetime"):
            async with new_uow() as uow:
                await uow.tenants.add(tenant)

    @pytest.mark.parametrize("text", TRICKY_TEXT)
    async def test_tricky_text_round_trips_unchanged(
        self, new_uow: NewUow, build: Build, text: str
    ) -> None:
        tenant = build.tenant(name=text)
        key = build.key(
            tenant.id,
            name=text,
            description=text * 3,
            owner_id=text,
            meta={text: text, "nested": {"list": [text, {text: [text]}]}, "nul": "a\u0000b"},
            permissions=(text, "plain"),
            roles=(text,),
        )
        async with new_uow() as uow:
            await uow.tenants.add(tenant)
            await uow.keys(tenant.id).add(key, build.secret(key))
            await uow.commit()
        async with new_uow() as uow:
            stored_tenant = await uow.tenants.get(tenant.id)
            stored_key = await uow.keys(tenant.id).get(key.id)
            by_owner = await uow.keys(tenant.id).list(
                limit=10, after=None, where=KeyFilter(owner_id=text)
            )
            tenant_count = len(await uow.tenants.list(limit=10, after=None, among=None))
        assert tenant == stored_tenant
        assert key == stored_key
        assert [key] == by_owner
        assert tenant_count == 1
