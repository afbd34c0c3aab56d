"""The fakes keep the promises of the SQL store they stand in for."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyrack.domain.audit import AuditEvent, Ref
from keyrack.domain.budget import Budget
from keyrack.domain.credits import Credits
from keyrack.domain.models import (
    NO_LIMITS,
    ApiKey,
    KeySecret,
    KeyStatus,
    Limits,
    RootKey,
    ServiceAccount,
    Tenant,
)
from keyrack.domain.people import Membership, TenantRole, User
from keyrack.errors import BackendUnavailable, ConcurrentUpdate, Conflict, DuplicateSlug
from keyrack.services.ports import CounterSnapshot, KeyFilter, LastUsed
from tests.fakes import CountingEntropy, FakeDatabase, FakeUnitOfWork

pytestmark = pytest.mark.anyio

AT = datetime(2027, 1, 15, 8, tzinfo=UTC)


def _tenant(n: int) -> Tenant:
    return Tenant(
        id=f"ten_{n}", name=f"T{n}", slug=f"t{n}", key_prefix="kr", created_at=AT, updated_at=AT
    )


def _key(n: int, tenant_id: str, **fields: Any) -> ApiKey:
    key = ApiKey(
        id=f"key_{n}",
        tenant_id=tenant_id,
        name="k",
        description=None,
        start="kr_abcd",
        status=KeyStatus.ACTIVE,
        expires_at=None,
        owner_id=None,
        identity_id=None,
        meta={},
        permissions=(),
        roles=(),
        system=False,
        recoverable=False,
        created_at=AT,
        updated_at=AT,
        last_used_at=None,
    )
    return replace(key, **fields)


def _secret(n: int, key: ApiKey, expires_at: datetime | None = None) -> KeySecret:
    return KeySecret(
        id=f"sec_{n}",
        key_id=key.id,
        tenant_id=key.tenant_id,
        digest=bytes([n]) * 32,
        pepper_version=1,
        start="kr_abcd",
        created_at=AT,
        expires_at=expires_at,
    )


@pytest.fixture
async def db() -> FakeDatabase:
    """Two tenants with one key (and one secret) each."""
    db = FakeDatabase()
    async with FakeUnitOfWork(db) as uow:
        for n in (1, 2):
            await uow.tenants.add(_tenant(n))
            key = _key(n, f"ten_{n}")
            await uow.keys(f"ten_{n}").add(key, _secret(n, key))
        await uow.commit()
    return db


class TestUnitOfWork:
    async def test_nothing_is_written_without_commit(self, db):
        before = db.snapshot()

        async with FakeUnitOfWork(db) as uow:
            await uow.tenants.add(_tenant(3))
            await uow.keys("ten_1").remove("key_1")

        assert before == db.snapshot()

    async def test_failure_rolls_back(self, db):
        before = db.snapshot()

        async def fail() -> None:
            async with FakeUnitOfWork(db) as uow:
                await uow.tenants.add(_tenant(3))
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await fail()

        assert before == db.snapshot()

    async def test_changes_after_the_last_commit_are_dropped(self, db):
        async with FakeUnitOfWork(db) as uow:
            await uow.tenants.add(_tenant(3))
            await uow.commit()
            await uow.tenants.add(_tenant(4))

        assert ["ten_1", "ten_2", "ten_3"] == sorted(db.tenants)

    async def test_commit_writes_only_the_rows_it_changed(self, db):
        async with FakeUnitOfWork(db) as slow:
            await slow.tenants.add(_tenant(3))
            async with FakeUnitOfWork(db) as fast:
                await fast.tenants.remove("ten_2")
                await fast.commit()
            await slow.commit()

        assert ["ten_1", "ten_3"] == sorted(db.tenants)

    def test_repositories_need_an_open_unit(self):
        with pytest.raises(RuntimeError, match="outside"):
            FakeUnitOfWork(FakeDatabase()).keys("ten_1")

    async def test_unavailable_database_fails_statements_and_commits(self, db):
        async with FakeUnitOfWork(db) as uow:
            db.unavailable = True
            with pytest.raises(BackendUnavailable):
                await uow.tenants.get("ten_1")
            with pytest.raises(BackendUnavailable):
                await uow.commit()

    async def test_for_update_lock_is_nowait(self, db):
        async with FakeUnitOfWork(db) as first, FakeUnitOfWork(db) as second:
            await first.keys("ten_1").get("key_1", for_update=True)
            with pytest.raises(ConcurrentUpdate):
                await second.keys("ten_1").get("key_1", for_update=True)
        async with FakeUnitOfWork(db) as third:
            assert await third.keys("ten_1").get("key_1", for_update=True) is not None


class TestTenantBoundRepositories:
    async def test_key_repository_never_reaches_another_tenant(self, db):
        async with FakeUnitOfWork(db) as uow:
            repo = uow.keys("ten_1")

            assert await repo.get("key_2") is None
            assert ["key_1"] == [
                k.id for k in await repo.list(limit=10, after=None, where=KeyFilter())
            ]
            assert not await repo.update(_key(2, "ten_1", name="stolen"), expected_version=1)
            assert not await repo.remove("key_2")
            await repo.retire_secrets("key_2", grace_end=AT, now=AT)
            await uow.commit()

        assert "k" == db.keys["key_2"].name
        assert db.secrets["sec_2"].expires_at is None

    async def test_rows_of_another_tenant_cannot_be_added(self, db):
        async with FakeUnitOfWork(db) as uow:
            key = _key(3, "ten_2")
            with pytest.raises(ValueError, match="another tenant"):
                await uow.keys("ten_1").add(key, _secret(3, key))
            with pytest.raises(ValueError, match="another tenant"):
                await uow.keys("ten_1").add_secret(_secret(4, db.keys["key_2"]))

    async def test_duplicate_digest_is_a_conflict(self, db):
        async with FakeUnitOfWork(db) as uow:
            clash = replace(_secret(9, db.keys["key_1"]), digest=db.secrets["sec_2"].digest)
            with pytest.raises(Conflict):
                await uow.keys("ten_1").add_secret(clash)

    async def test_service_account_repository_is_bound_to_its_scope(self, db):
        account = ServiceAccount(
            id="sa_1", tenant_id="ten_1", name="ci", permissions=frozenset(), is_bootstrap=False,
            created_at=AT,
        )  # fmt: skip
        root_key = RootKey(
            id="rk_1", service_account_id="sa_1", tenant_id="ten_1", start="krroot_abcd",
            created_at=AT, revoked_at=None,
        )  # fmt: skip
        async with FakeUnitOfWork(db) as uow:
            await uow.service_accounts("ten_1").add(account)
            await uow.service_accounts("ten_1").add_root_key(
                root_key, digest=b"r" * 32, pepper_version=1
            )
            for scope in ("ten_2", None):
                other = uow.service_accounts(scope)
                assert await other.get("sa_1") is None
                assert [] == await other.list(limit=10, after=None)
                assert await other.get_root_key("sa_1", "rk_1") is None
                assert [] == await other.list_root_keys("sa_1")
                await other.revoke_root_key("rk_1", at=AT)
            with pytest.raises(ValueError, match="another scope"):
                await uow.service_accounts(None).add(account)
            assert (await uow.root_keys.find([b"r" * 32])) is not None


class TestTenants:
    async def test_taken_slug_is_a_duplicate_on_add_and_update(self, db):
        async with FakeUnitOfWork(db) as uow:
            with pytest.raises(DuplicateSlug):
                await uow.tenants.add(replace(_tenant(3), slug="t1"))
            with pytest.raises(DuplicateSlug):
                await uow.tenants.update(replace(_tenant(2), slug="t1"))

    async def test_remove_cascades_to_the_tenants_rows(self, db):
        async with FakeUnitOfWork(db) as uow:
            assert await uow.tenants.remove("ten_1")
            assert not await uow.tenants.remove("ten_1")
            await uow.commit()

        assert (["key_2"], ["sec_2"]) == (list(db.keys), list(db.secrets))


class TestKeys:
    async def test_update_is_compare_and_set_on_version(self, db):
        async with FakeUnitOfWork(db) as uow:
            repo = uow.keys("ten_1")
            assert not await repo.update(_key(1, "ten_1", version=2), expected_version=7)
            assert await repo.update(_key(1, "ten_1", name="new", version=2), expected_version=1)
            await uow.commit()

        assert ("new", 2) == (db.keys["key_1"].name, db.keys["key_1"].version)

    async def test_retire_secrets_ends_current_at_grace_and_older_grace_now(self, db):
        key = db.keys["key_1"]
        later = AT + timedelta(hours=1)
        async with FakeUnitOfWork(db) as uow:
            repo = uow.keys("ten_1")
            await repo.add_secret(_secret(7, key, expires_at=later))  # still in a grace
            await repo.add_secret(_secret(8, key, expires_at=AT - timedelta(hours=1)))  # ended
            await repo.retire_secrets("key_1", grace_end=later, now=AT)
            await uow.commit()

        assert (later, AT, AT - timedelta(hours=1)) == (
            db.secrets["sec_1"].expires_at,
            db.secrets["sec_7"].expires_at,
            db.secrets["sec_8"].expires_at,
        )

    @pytest.mark.parametrize(
        ("secret_end", "key_end", "expected"),
        [(None, None, None), (1, None, 1), (None, 2, 2), (1, 2, 1), (3, 2, 2)],
        ids=["none", "secret-only", "key-only", "secret-first", "key-first"],
    )
    async def test_record_is_valid_until_the_earlier_end(self, db, secret_end, key_end, expected):
        def at(hours: int | None) -> datetime | None:
            return None if hours is None else AT + timedelta(hours=hours)

        db.keys["key_1"] = replace(db.keys["key_1"], expires_at=at(key_end))
        db.secrets["sec_1"] = replace(db.secrets["sec_1"], expires_at=at(secret_end))
        async with FakeUnitOfWork(db) as uow:
            record = await uow.secrets.find([b"\x00" * 32, db.secrets["sec_1"].digest])

        assert record is not None
        end = at(expected)
        assert (None if end is None else end.timestamp()) == record.valid_until

    async def test_last_used_only_moves_forward_and_stays_in_its_tenant(self, db):
        async with FakeUnitOfWork(db) as uow:
            await uow.usage.write_last_used(
                [
                    LastUsed(tenant_id="ten_1", key_id="key_1", at=AT + timedelta(seconds=5)),
                    LastUsed(tenant_id="ten_1", key_id="key_2", at=AT),
                ]
            )
            await uow.usage.write_last_used([LastUsed(tenant_id="ten_1", key_id="key_1", at=AT)])
            await uow.commit()

        assert AT + timedelta(seconds=5) == db.keys["key_1"].last_used_at
        assert db.keys["key_2"].last_used_at is None

    async def test_write_credits_replaces_the_balance_snapshot_but_not_the_version(self, db):
        db.keys["key_1"] = replace(db.keys["key_1"], limits=Limits(credits=Credits(10)))
        async with FakeUnitOfWork(db) as uow:
            await uow.keys("ten_1").write_credits("key_1", remaining=3, refilled_at_ms=9, version=4)
            await uow.keys("ten_1").write_credits("key_2", remaining=0, refilled_at_ms=9, version=4)
            await uow.commit()

        assert (Credits(3, refilled_at_ms=9), 4, 1) == (
            db.keys["key_1"].limits.credits,
            db.keys["key_1"].limits.credits_version,
            db.keys["key_1"].version,
        )
        assert NO_LIMITS == db.keys["key_2"].limits

    async def test_counters_keep_a_balance_only_at_its_version_and_stay_in_their_tenant(self, db):
        limits = Limits(credits=Credits(10), credits_version=2, budget=Budget(100))
        db.keys["key_1"] = replace(db.keys["key_1"], limits=limits)
        db.keys["key_2"] = replace(db.keys["key_2"], limits=limits)
        async with FakeUnitOfWork(db) as uow:
            await uow.usage.write_counters(
                [
                    CounterSnapshot("ten_1", "key_1", credits=(7, 5, 2), budget=(40, 6)),
                    CounterSnapshot("ten_1", "key_2", credits=(7, 5, 2), budget=(40, 6)),
                ]
            )
            await uow.usage.write_counters([CounterSnapshot("ten_1", "key_1", credits=(1, 5, 1))])
            await uow.commit()

        assert (Credits(7, refilled_at_ms=5), Budget(100, spent=40, period_start_ms=6)) == (
            db.keys["key_1"].limits.credits,
            db.keys["key_1"].limits.budget,
        )
        assert limits == db.keys["key_2"].limits


def _user(n: int) -> User:
    return User(
        id=f"usr_{n}", email=f"u{n}@example.com", name="U", is_platform_admin=False, created_at=AT
    )


def _member(tenant_id: str, n: int, role: TenantRole = TenantRole.ADMIN) -> Membership:
    return Membership(tenant_id, f"usr_{n}", role, AT, AT)


class TestPeopleRows:
    async def test_people_rows_are_written_only_on_commit(self, db):
        before = db.snapshot()

        async with FakeUnitOfWork(db) as uow:
            await uow.users.add(_user(1), password_hash="h")
            await uow.memberships("ten_1").add(_member("ten_1", 1))
            await uow.audit.record(AuditEvent("ten_1", AT, "member.added", Ref("user", "u"), None))
            key = _key(9, "ten_1", system=True, owner_id="usr_1")
            await uow.keys("ten_1").add(key, _secret(9, key), sealed=b"s")

        assert before == db.snapshot()

    async def test_a_locked_admin_read_sees_commits_since_the_unit_began_and_its_own_changes(
        self, db
    ):
        """What PostgreSQL's READ COMMITTED statement after ``FOR UPDATE`` sees."""
        async with FakeUnitOfWork(db) as setup:
            for n in (1, 2, 3):
                await setup.users.add(_user(n), password_hash=None)
            await setup.memberships("ten_1").add(_member("ten_1", 1))
            await setup.memberships("ten_1").add(_member("ten_1", 2))
            await setup.commit()

        async with FakeUnitOfWork(db) as mine:
            await mine.memberships("ten_1").remove("usr_1")
            async with FakeUnitOfWork(db) as other:
                await other.memberships("ten_1").add(_member("ten_1", 3))
                await other.commit()
            unlocked = await mine.memberships("ten_1").admin_ids(lock=False)
            locked = await mine.memberships("ten_1").admin_ids(lock=True)
            await mine.commit()

        assert (["usr_2"], ["usr_2", "usr_3"]) == (unlocked, locked)
        assert {("ten_1", "usr_2"), ("ten_1", "usr_3")} == set(db.memberships)

    async def test_removing_a_tenant_takes_its_memberships_invitations_and_sealed_secrets(self, db):
        async with FakeUnitOfWork(db) as uow:
            await uow.users.add(_user(1), password_hash=None)
            await uow.memberships("ten_2").add(_member("ten_2", 1))
            key = _key(9, "ten_2", recoverable=True)
            await uow.keys("ten_2").add(key, _secret(9, key), sealed=b"s")
            await uow.tenants.remove("ten_2")
            await uow.commit()

        assert ({}, {}, ["usr_1"]) == (db.memberships, db.sealed_secrets, list(db.users))


class TestCountingEntropy:
    def test_calls_return_distinct_growing_values(self):
        entropy = CountingEntropy()

        values = [entropy(10) for _ in range(200)]

        assert sorted(values) == values
        assert 200 == len(set(values))
        assert {10} == {len(v) for v in values}
